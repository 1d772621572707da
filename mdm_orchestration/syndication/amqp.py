"""A RabbitMQ subscriber: AMQP 0-9-1 through ``pika``, persistent messages, publisher confirms.

Each message goes to a durable topic exchange with a routing key per event type (the
``routing_key`` template), ``delivery_mode`` persistent, ``message_id`` and the
``Idempotency-Key`` header set to the event id: the same at-least-once contract as the
webhook. One channel in confirm mode publishes the messages one by one in outbox order and
waits for the broker's confirm of each, so a message counts as delivered only once the broker
has taken responsibility for it (written it to its durable queues), and the order per golden
id is the outbox order. A message that no queue takes is returned by the broker
(``mandatory``) and fails the delivery instead of vanishing.

A broker that is down, refuses the credentials or drops the connection raises
:class:`DeliveryError` with the number confirmed before it; the delivery loop retries with
backoff, and the next ``send`` opens a new connection. Errors name the exception class only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions

from mdm_orchestration.config import AmqpTarget, expand_env
from mdm_orchestration.syndication.messages import Message
from mdm_orchestration.syndication.transports import DeliveryError


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
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None

    def _open(self) -> Any:  # noqa: ANN401
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        t = self.target
        self._connection = pika.BlockingConnection(self.parameters)
        channel = self._connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare(exchange=t.exchange, exchange_type="topic", durable=True)
        if t.queue:
            channel.queue_declare(queue=t.queue, durable=True)
            for key in t.bindings:
                channel.queue_bind(queue=t.queue, exchange=t.exchange, routing_key=key)
        self._channel = channel
        return channel

    def routing_key(self, message: Message) -> str:
        return self.target.routing_key.format(
            event_type=message.event_type, party_type=message.party_type or "unknown"
        )

    def send(self, messages: Sequence[Message], batch_name: str) -> None:
        delivered = 0
        try:
            channel = self._open()
            for m in messages:
                channel.basic_publish(
                    exchange=self.target.exchange,
                    routing_key=self.routing_key(m),
                    body=json.dumps(m.as_dict(), ensure_ascii=False, default=str).encode(),
                    properties=pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=m.event_id,
                        type=m.event_type,
                        headers={
                            "Idempotency-Key": m.event_id,
                            "golden_id": m.golden_id,
                            "version": m.version,
                        },
                    ),
                    mandatory=self.target.mandatory,
                )
                delivered += 1
        except (pika.exceptions.AMQPError, OSError) as exc:
            # The channel or the connection is unusable after most of these: start afresh.
            self.close()
            raise DeliveryError(f"amqp: {type(exc).__name__}", delivered=delivered) from None

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()


__all__ = ["AmqpTransport"]
