"""A TCP proxy to a real Redis on loopback that loses one answer: for the tests of what a
client does when its write happened but the answer never came."""

from __future__ import annotations

import contextlib
import socket
import threading


class AnswerLosingProxy:
    """A TCP proxy to Redis on loopback that, the first time a client sends EVALSHA (the
    commit of a new workflow), passes the command on and closes the client's connection as
    Redis answers, instead of handing the answer over. Everything else (and every later
    connection) is passed through."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            losing = threading.Event()
            threading.Thread(target=self._up, args=(client, server, losing), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, losing), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, losing: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if b"EVALSHA" in data.upper() and not self.cut.is_set():
                    self.cut.set()
                    losing.set()
                server.sendall(data)
        except OSError:
            pass

    def _down(self, server: socket.socket, client: socket.socket, losing: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if losing.is_set():  # Redis has run it: its answer is lost with the connection
                    break
                client.sendall(data)
        except OSError:
            pass
        for end in (client, server):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # (a close alone would not wake the other thread's recv)
            end.close()

    def close(self) -> None:
        self.listener.close()
