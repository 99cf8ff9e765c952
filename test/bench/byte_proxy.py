#!/usr/bin/env python3
"""Helper of test/bench/sync.sh: counts the bytes a server sends to its clients over a Unix socket.

  byte_proxy.py LISTEN TARGET COUNT_FILE

Listens on the Unix socket LISTEN (mode 0777) and forwards every connection to the Unix socket
TARGET, both ways, unchanged.  The hub's subscription reaches the edge through it, so the bytes
it counts from TARGET to the clients are the bytes the edge ships to the hub (the replication
protocol as sent: pgoutput messages, initial table copies, keepalives).  On SIGUSR1 it writes
"<bytes from TARGET> <bytes to TARGET> <n>" to COUNT_FILE (replaced atomically; n counts the
requests, so a reader knows the file answers its own).  Runs until SIGTERM.
"""
import asyncio
import os
import signal
import sys

CHUNK = 256 * 1024


async def pump(reader, writer, counts, i):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            counts[i] += len(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def main(listen, target, count_file):
    counts = [0, 0]          # from TARGET (to the clients), to TARGET
    asked = [0]

    async def handle(c_reader, c_writer):
        try:
            t_reader, t_writer = await asyncio.open_unix_connection(target)
        except OSError:
            c_writer.close()
            return
        await asyncio.gather(pump(t_reader, c_writer, counts, 0), pump(c_reader, t_writer, counts, 1))

    def dump():
        asked[0] += 1
        tmp = count_file + '.tmp'
        with open(tmp, 'w') as f:
            f.write('%d %d %d\n' % (counts[0], counts[1], asked[0]))
        os.replace(tmp, count_file)

    if os.path.exists(listen):
        os.unlink(listen)
    server = await asyncio.start_unix_server(handle, path=listen)
    os.chmod(listen, 0o777)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, dump)
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    dump()                   # the file exists (0 0 1) once the socket listens
    async with server:
        await stop


if __name__ == '__main__':
    asyncio.run(main(*sys.argv[1:4]))
