"""A TCP proxy the tests start and stop in front of PostgreSQL, to make it unreachable."""

from __future__ import annotations

import select
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `stop()` refuses and cuts every connection."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        """Listen (on the same port as before, after a stop) and accept connections."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        thread = threading.Thread(target=self._accept, args=(listener,), name="proxy-accept")
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop listening and close every forwarded connection."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    @property
    def url_host(self) -> str:
        """host:port of the proxy."""
        return f"127.0.0.1:{self.port}"

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self.target, timeout=5)
            with self._lock:
                self._sockets += [client, upstream]
            thread = threading.Thread(target=self._pump, args=(client, upstream), name="proxy-pump")
            thread.start()
            self._threads.append(thread)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        pairs = {client: upstream, upstream: client}
        try:
            while not self._stopping.is_set():
                ready, _, _ = select.select(list(pairs), [], [], 0.05)
                for sock in ready:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    pairs[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()
