// Draws every figure the server put in a page: <div class="plot" data-figure="JSON">.
// The figure JSON comes from app/dashboard/figures.py; plotly.js is served by the
// dashboard itself (no CDN), loaded before this script.
"use strict";

function drawFigures() {
  for (const element of document.querySelectorAll("div.plot[data-figure]")) {
    const figure = JSON.parse(element.dataset.figure);
    // nothing that links or sends to an outside site (the chart studio)
    Plotly.newPlot(element, figure.data, figure.layout, {
      displaylogo: false,
      responsive: true,
      showLink: false,
      showSendToCloud: false,
      showEditInChartStudio: false,
    });
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", drawFigures);
} else {
  drawFigures();
}
