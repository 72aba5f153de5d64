"""The read-only web dashboard (``alphafactory dashboard``): server-rendered pages over
the system of record, read through the viewer role, with Plotly plots.

- ``app``: the FastAPI application factory (the viewer's pool, static files, headers);
- ``pages``: the GET routes and what each page reads;
- ``performance``: the out-of-sample returns of each strategy's allocations;
- ``figures``: the Plotly figures, as JSON the page's script draws.
"""
