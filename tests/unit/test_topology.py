"""Which broker and which store: one Redis by default, RabbitMQ quorum queues and a Redis Cluster when asked."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from tests.support.processes import free_port
from workers.queue import topology
from workers.queue.config import broker_config
from workers.queue.producer import Broker, BrokerUnavailable
from workers.settings import Settings

RABBIT = "amqp://signal:secret@rabbitmq:5672/"


def test_one_redis_stays_the_default_broker():
    settings = Settings(redis_url="redis://r:6379/0")
    assert settings.celery_broker_url == "redis://r:6379/0" and not settings.broker_is_amqp
    config = broker_config(settings)
    assert config["broker_url"] == "redis://r:6379/0"
    assert config["broker_transport_options"]["visibility_timeout"] == settings.visibility_timeout_s
    assert [q.name for q in config["task_queues"]] == ["ingest", "flush"]
    assert all(not q.queue_arguments for q in config["task_queues"])


def test_rabbitmq_queues_are_quorum_queues_with_a_delivery_limit_and_a_dead_letter_queue():
    settings = Settings(broker_url=RABBIT, broker_delivery_limit=7)
    assert settings.broker_is_amqp and settings.celery_broker_url == RABBIT
    config = broker_config(settings)
    assert config["broker_transport_options"] == {"confirm_publish": True}  # every publish waits for its confirm
    assert config["task_default_queue_type"] == "quorum"
    for queue in config["task_queues"]:
        assert queue.exchange.name == "signal" and queue.exchange.type == "topic"  # native delayed delivery
        assert queue.routing_key == queue.name
        assert queue.queue_arguments == {
            "x-queue-type": "quorum",
            "x-delivery-limit": 7,
            "x-dead-letter-exchange": "signal.dead-letter",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    dead = topology.dead_letter_queue()
    assert dead.name == "signal.dead-letter" and dead.exchange.name == "signal.dead-letter"
    assert dead.queue_arguments == {"x-queue-type": "quorum"}


def test_the_worker_app_declares_every_queue_it_routes_to():
    """Celery detects quorum queues from the app's own declarations only."""
    from workers.app import app

    declared = {q.name for q in app.conf.task_queues}
    assert {route["queue"] for route in app.conf.task_routes.values()} <= declared


def test_retry_countdowns_are_whole_seconds():
    assert topology.whole_seconds(0.2) == 1
    assert topology.whole_seconds(1.0) == 1
    assert topology.whole_seconds(1.01) == 2
    assert topology.whole_seconds(0) == 1


def test_a_redis_cluster_needs_another_broker_and_database_zero():
    with pytest.raises(ValidationError, match="cannot use a Redis Cluster"):
        Settings(redis_cluster=True, redis_url="redis://node:7000/0")
    with pytest.raises(ValidationError, match="cannot use a Redis Cluster"):
        Settings(redis_cluster=True, redis_url="redis://node:7000/0", broker_url="redis://other:6379/0")
    with pytest.raises(ValidationError, match="database 0"):
        Settings(redis_cluster=True, redis_url="redis://node:7000/3", broker_url=RABBIT)
    ok = Settings(redis_cluster=True, redis_url="redis://node:7000", broker_url=RABBIT, redis_min_replicas=1)
    assert ok.redis_min_replicas == 1


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_a_broker_that_is_down_is_reported_within_seconds(scheme):
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}//" if scheme == "amqp" else f"redis://127.0.0.1:{free_port()}/0"
    broker = Broker(Settings(broker_url=url))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="signal.ingest"):
        broker.ingest("i", [{"type": "track"}])
    with pytest.raises(BrokerUnavailable, match="signal.upload"):
        broker.upload("i", "b")
    assert time.monotonic() - started < 20
    broker.close()
