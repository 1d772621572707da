"""A RabbitMQ subscriber: AMQP 0-9-1 through ``pika``, persistent messages, publisher confirms.

Each message goes to a durable topic exchange with a routing key per event type (the
``routing_key`` template), ``delivery_mode`` persistent, ``message_id`` and the
``Idempotency-Key`` header set to the event id: the same at-least-once contract as the
webhook. One channel in confirm mode publishes the messages in outbox order with at most a
*window* of them unconfirmed (the target's ``confirm_window``). Between chunks of messages the
I/O loop turns once without blocking: it writes them (the frames of a chunk in one write) and
takes the confirms that have come. It blocks only when a whole window is unconfirmed, so the
broker persists one chunk while the next is encoded (a window of 1 waits for each message's
confirm). A message counts as delivered only once the broker has taken responsibility for it
(written it to its durable queues). One channel keeps the publishing order, so the order per
golden id is the outbox order. A message that no queue takes is returned by the broker
(``mandatory``) and fails the delivery instead of vanishing.

A broker that is down, refuses the credentials, nacks a message or drops the connection
raises :class:`DeliveryError` with the number confirmed before it (the unbroken run of
confirms from the start); the delivery loop retries with backoff from there, and the next
``send`` opens a new connection. Messages after that point may have reached the queue
already: they come again under the same ids (at least once). Errors name the exception class
only.

pika's ``SelectConnection`` (its asynchronous, callback-driven adapter) is what lets a window
be published before the confirms are awaited; its I/O loop runs only inside ``send``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection

from mdm_orchestration.config import AmqpTarget, expand_env
from mdm_orchestration.syndication.messages import Message, message_json
from mdm_orchestration.syndication.transports import DeliveryError


class _Window:
    """The confirms, nacks and returns of one ``send``'s messages (delivery tags
    ``first_tag`` onwards, in publishing order)."""

    def __init__(self, first_tag: int, size: int) -> None:
        self.first_tag, self.size = first_tag, size
        self.acked = [False] * size
        self._settled = [False] * size
        self._floor = 0  # every message before it is settled
        self.failed: int | None = None  # the first message nacked or returned
        self.failure = ""
        self.settled = 0  # acked or nacked

    def index(self, tag: int) -> int:
        return tag - self.first_tag

    def confirm(self, tag: int, multiple: bool, ok: bool) -> None:
        last = min(self.index(tag), self.size - 1)
        first = self._floor if multiple else last
        for i in range(max(first, 0), last + 1):
            if self._settled[i]:
                continue
            self._settled[i] = True
            self.settled += 1
            if ok:
                self.acked[i] = True
            else:
                self.fail(i, "NackError")
        while self._floor < self.size and self._settled[self._floor]:
            self._floor += 1

    def fail(self, i: int, why: str) -> None:
        if self.failed is None or i < self.failed:
            self.failed, self.failure = i, why

    def confirmed(self) -> int:
        """The unbroken run of acknowledged messages from the start (a returned message is
        acknowledged too, but was not delivered)."""
        n = 0
        limit = self.size if self.failed is None else self.failed
        while n < limit and self.acked[n]:
            n += 1
        return n


#: Messages published between two turns of the I/O loop: the turn writes them to the socket
#: and takes the confirms that have come, so the broker works while the next ones are encoded.
_CHUNK = 50


class _Connection(SelectConnection):
    """pika's ``SelectConnection``, with the frames published between two turns of the I/O loop
    handed to the socket in one write. pika writes each frame (a message is three: method,
    header, body) with a ``send`` of its own, and on loopback those system calls were the
    largest single cost of publishing. Frames are held only while :attr:`holding` (the
    publishing loop) and always let go before the loop turns (:meth:`release`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        self.holding = False
        self._held: list[bytes] = []
        super().__init__(*args, **kwargs)

    def _adapter_emit_data(self, data: bytes) -> None:
        if self.holding:
            self._held.append(data)
        else:
            super()._adapter_emit_data(data)

    def release(self) -> None:
        """Hand the held frames to the transport, in order, as one write."""
        if not self._held:
            return
        data, self._held = b"".join(self._held), []
        if self._transport is not None:  # gone: unconfirmed, so sent again later
            super()._adapter_emit_data(data)

    def drop_held(self) -> None:
        """Forget the held frames (publishes of a send that failed: never confirmed, so sent
        again by the next send), so that they never follow a Channel.Close."""
        self._held = []

    @contextlib.contextmanager
    def unheld(self) -> Iterator[None]:
        """While the I/O loop runs: the held frames go out first, and what pika writes in the
        loop (heartbeats, replies to the broker) goes straight to the transport."""
        holding, self.holding = self.holding, False
        self.release()
        try:
            yield
        finally:
            self.holding = holding


class AmqpTransport:
    def __init__(self, target: AmqpTarget) -> None:
        try:
            url = expand_env(target.url)
        except ValueError as exc:
            raise DeliveryError(f"amqp: url: {exc}") from None
        try:
            self.parameters = pika.URLParameters(url)
        except (ValueError, TypeError) as exc:
            raise DeliveryError(f"amqp: url: {type(exc).__name__}") from None
        seconds = target.timeout_seconds
        self.parameters.socket_timeout = seconds
        self.parameters.stack_timeout = seconds
        self.parameters.blocked_connection_timeout = seconds
        self.parameters.connection_attempts = 1
        self.target = target
        self.window = target.confirm_window
        self._connection: _Connection | None = None
        self._channel: Any = None
        self._ready = False
        self._error: str | None = None
        self._until: Callable[[], bool] | None = None
        self._tag = 0  # the last delivery tag used on the channel
        self._current: _Window | None = None
        self._by_id: dict[str, int] = {}

    # --- the I/O loop, run only while waiting ------------------------------------------------

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Run the I/O loop until ``ready()``, a failure, or the timeout."""
        connection = self._connection
        assert connection is not None
        loop = connection.ioloop
        deadline = time.monotonic() + self.target.timeout_seconds
        self._until = ready
        timer = loop.call_later(self.target.timeout_seconds, self._timed_out)
        try:
            with connection.unheld():
                while not (ready() or self._error):
                    if time.monotonic() >= deadline:
                        self._error = self._error or "Timeout"
                        break
                    loop.start()
        finally:
            self._until = None
            loop.remove_timeout(timer)

    def _wake(self) -> None:
        if self._until is not None and (self._until() or self._error) and self._connection:
            self._connection.ioloop.stop()

    def _timed_out(self) -> None:
        self._error = self._error or "Timeout"
        self._wake()

    def _failed(self, reason: Any) -> None:  # noqa: ANN401
        self._error = self._error or type(reason).__name__
        self._ready = False
        self._channel = None
        self._wake()

    # --- opening: connection, channel in confirm mode, exchange, queue, bindings ----------

    def _open(self) -> None:
        if self._channel is not None and self._channel.is_open and self._error is None:
            return
        self.close()
        self._error, self._ready, self._tag = None, False, 0
        self._connection = _Connection(
            self.parameters,
            on_open_callback=lambda conn: conn.channel(on_open_callback=self._on_channel),
            on_open_error_callback=lambda _conn, exc: self._failed(exc),
            on_close_callback=lambda _conn, reason: self._failed(reason),
        )
        self._wait(lambda: self._ready)
        if self._error:
            raise _Failure(self._error)

    def _on_channel(self, channel: Any) -> None:  # noqa: ANN401
        self._channel = channel
        channel.add_on_close_callback(lambda _ch, reason: self._failed(reason))
        channel.add_on_return_callback(self._on_return)
        t = self.target

        def bind(keys: list[str]) -> None:
            if not keys:
                self._ready = True
                self._wake()
                return
            channel.queue_bind(
                queue=t.queue,
                exchange=t.exchange,
                routing_key=keys[0],
                callback=lambda _f: bind(keys[1:]),
            )

        def queue(_frame: Any) -> None:  # noqa: ANN401
            if t.queue:
                channel.queue_declare(
                    queue=t.queue, durable=True, callback=lambda _f: bind(list(t.bindings))
                )
            else:
                bind([])

        def exchange(_frame: Any) -> None:  # noqa: ANN401
            channel.exchange_declare(
                exchange=t.exchange, exchange_type="topic", durable=True, callback=queue
            )

        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=exchange)

    def _on_confirm(self, frame: Any) -> None:  # noqa: ANN401
        method = frame.method
        if self._current is not None:
            ok = isinstance(method, pika.spec.Basic.Ack)
            self._current.confirm(method.delivery_tag, bool(method.multiple), ok)
        self._wake()

    def _on_return(self, _channel: Any, _method: Any, props: Any, _body: bytes) -> None:  # noqa: ANN401
        i = self._by_id.get(props.message_id)
        if self._current is not None and i is not None:
            self._current.fail(i, "UnroutableError")

    # --- sending -------------------------------------------------------------------------

    def routing_key(self, message: Message) -> str:
        return self.target.routing_key.format(
            event_type=message.event_type, party_type=message.party_type or "unknown"
        )

    def _properties(self, m: Message) -> pika.BasicProperties:
        return pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=m.event_id,
            type=m.event_type,
            headers={"Idempotency-Key": m.event_id, "golden_id": m.golden_id, "version": m.version},
        )

    def _turn(self) -> None:
        """One turn of the I/O loop without blocking: write what is buffered, take the
        confirms that have come."""
        connection = self._connection
        assert connection is not None
        loop = connection.ioloop
        with connection.unheld():
            loop.call_later(0, loop.stop)
            loop.start()

    def _publish(self, messages: Sequence[Message]) -> int:
        """Publish ``messages`` with at most a window of them unconfirmed at any time, and
        wait for the last confirms; the number confirmed in a row from the first."""
        self._open()
        connection = self._connection
        assert connection is not None
        state = _Window(self._tag + 1, len(messages))
        self._current = state
        self._by_id = {m.event_id: i for i, m in enumerate(messages)}
        # A turn of the loop every `chunk` messages; a full window waits until `chunk` of it
        # are confirmed (a window of 1: each message waits for its own confirm).
        chunk = max(1, min(_CHUNK, self.window // 2))
        low = self.window - chunk
        published = 0
        connection.holding = True
        try:
            for sent, m in enumerate(messages, start=1):
                self._channel.basic_publish(
                    exchange=self.target.exchange,
                    routing_key=self.routing_key(m),
                    body=message_json(m),
                    properties=self._properties(m),
                    mandatory=self.target.mandatory,
                )
                self._tag += 1
                published = sent
                if sent - state.settled >= self.window:
                    self._wait(lambda n=sent: n - state.settled <= low)
                elif sent % chunk == 0:
                    self._turn()
                else:
                    continue
                if self._error is not None or state.failed is not None:
                    break
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._error = self._error or type(exc).__name__
        finally:
            connection.holding = False
        if self._error is None:
            # Every published message settled (after a nack or a return too, so that those
            # before it count as delivered).
            self._wait(lambda: state.settled >= published)
        if self._error is not None:
            connection.drop_held()
        confirmed = state.confirmed()
        if confirmed < len(messages):
            raise _Failure(state.failure or self._error or "Timeout", confirmed)
        return confirmed

    def send(self, messages: Sequence[Message], batch_name: str) -> None:
        if not messages:
            return
        try:
            self._publish(messages)
        except _Failure as failure:
            # The channel or the connection may be unusable: start afresh on the next send.
            self.close()
            raise DeliveryError(f"amqp: {failure.name}", delivered=failure.confirmed) from None
        except (pika.exceptions.AMQPError, OSError) as exc:
            delivered = self._current.confirmed() if self._current is not None else 0
            self.close()
            raise DeliveryError(f"amqp: {type(exc).__name__}", delivered=delivered) from None
        finally:
            self._current, self._by_id = None, {}

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._ready = False
        if connection is None:
            return
        connection.holding = False
        connection.drop_held()
        with contextlib.suppress(pika.exceptions.AMQPError, OSError, AssertionError):
            if connection.is_open:
                # Wait for the broker's close-ok (or the timeout), even after a failure.
                self._connection, self._error = connection, None
                connection.close()
                self._wait(lambda: connection.is_closed)
        self._connection = None
        with contextlib.suppress(Exception):
            # One more turn of the loop: pika closes the socket in a callback after close-ok.
            loop = connection.ioloop
            loop.call_later(0.005, loop.stop)
            loop.start()
            loop.close()


class _Failure(Exception):
    def __init__(self, name: str, confirmed: int = 0) -> None:
        super().__init__(name)
        self.name, self.confirmed = name, confirmed


__all__ = ["AmqpTransport"]
