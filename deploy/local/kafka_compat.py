"""The embedded Kafka broker behind a small compatibility proxy, so librdkafka clients
(kcat, confluent-kafka) can use the local stack like a real cluster.

Why: tansu 0.6.0 answers ``ApiVersions`` v3 with the optional top-level tagged fields
(supported and finalized features), and librdkafka 2.0 (Debian 12's kcat) fails to parse
that response ("Read underflow"), then refuses the broker. kafka-python never asks for v3.
The proxy forwards every byte unchanged except that one response, whose tagged fields it
drops: they are optional by the protocol's rules, and no client here needs them.

One process: this module starts tansu on a private port with the proxy's address as the
advertised listener (so every client connection, after the bootstrap's metadata too, goes
through the proxy), then serves the proxy until SIGTERM, when it stops tansu.

    python -m deploy.local.kafka_compat --listen 127.0.0.1:19092 --tansu PATH
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import struct
import subprocess
import sys

API_VERSIONS = 18
FIRST_TAGGED_VERSION = 3  # ApiVersions responses carry tagged fields from v3 on


def strip_api_versions_tags(frame: bytes) -> bytes:
    """An ApiVersions v3+ response (correlation id first) without its top-level tagged
    fields: the same api keys and throttle time, then an empty tag buffer."""
    offset = 4 + 2  # correlation id, error code
    count, offset = _uvarint(frame, offset)
    for _ in range(max(count - 1, 0)):  # compact array: length + 1
        offset += 6  # api key, min version, max version (int16 each)
        tags, offset = _uvarint(frame, offset)
        for _ in range(tags):
            offset = _skip_tag(frame, offset)
    offset += 4  # throttle time
    return frame[:offset] + b"\x00"


def _uvarint(data: bytes, offset: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _skip_tag(data: bytes, offset: int) -> int:
    _, offset = _uvarint(data, offset)  # tag
    size, offset = _uvarint(data, offset)
    return offset + size


async def _frames(reader: asyncio.StreamReader):
    while True:
        try:
            header = await reader.readexactly(4)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        (size,) = struct.unpack(">i", header)
        yield await reader.readexactly(size)


async def _to_broker(reader, writer, pending: set[int]) -> None:
    async for frame in _frames(reader):
        api_key, version, correlation = struct.unpack(">hhi", frame[:8])
        if api_key == API_VERSIONS and version >= FIRST_TAGGED_VERSION:
            pending.add(correlation)
        writer.write(struct.pack(">i", len(frame)) + frame)
        await writer.drain()
    writer.close()


async def _to_client(reader, writer, pending: set[int]) -> None:
    async for frame in _frames(reader):
        (correlation,) = struct.unpack(">i", frame[:4])
        if correlation in pending:
            pending.discard(correlation)
            with contextlib.suppress(IndexError):  # not the expected layout: pass it on
                frame = strip_api_versions_tags(frame)
        writer.write(struct.pack(">i", len(frame)) + frame)
        await writer.drain()
    writer.close()


def serve(listen: str, broker_port: int) -> asyncio.AbstractServer:
    host, _, port = listen.rpartition(":")

    async def connection(client_reader, client_writer) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", broker_port)
        except OSError:
            client_writer.close()
            return
        pending: set[int] = set()
        await asyncio.gather(
            _to_broker(client_reader, broker_writer, pending),
            _to_client(broker_reader, client_writer, pending),
            return_exceptions=True,
        )

    return asyncio.start_server(connection, host, int(port), reuse_address=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _main(listen: str, tansu: str) -> int:
    broker_port = _free_port()
    broker = subprocess.Popen(
        [
            tansu,
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{broker_port}",
            "--advertised-listener-url",
            f"tcp://{listen}",
            "--storage-engine",
            "memory://tansu/",
        ]
    )
    server = await serve(listen, broker_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    waiter = asyncio.create_task(asyncio.to_thread(broker.wait))
    done, _ = await asyncio.wait(
        [asyncio.create_task(stop.wait()), waiter], return_when=asyncio.FIRST_COMPLETED
    )
    server.close()
    if broker.poll() is None:
        broker.terminate()
        broker.wait(timeout=10)
    return 0 if stop.is_set() else 1  # the broker died on its own: fail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT clients connect to")
    parser.add_argument("--tansu", required=True, help="path of the tansu binary")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args.listen, args.tansu))


if __name__ == "__main__":
    sys.exit(main())
