"""The seed documentation's example values: the install request of its curl call, verbatim, and its credentials."""

from __future__ import annotations

from typing import Any

import orjson

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKENvalue9876"
BUCKET = "datafly-events-production"

# Exactly the -d body of the documented curl install request.
INSTALL_BODY_TEXT = """{
    "name": "Amazon S3",
    "variant": "default",
    "config": {
      "bucket": "datafly-events-production",
      "region": "us-east-1",
      "access_key_id": "AKIAIOSFODNN7EXAMPLE",
      "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      "prefix": "events/",
      "storage_class": "STANDARD",
      "server_side_encryption": "AES256"
    },
    "delivery_mode": "server_side"
  }"""


def install_body() -> dict[str, Any]:
    """A fresh copy of the documented install body, as a dict."""
    return orjson.loads(INSTALL_BODY_TEXT)


def seed_config() -> dict[str, Any]:
    """A fresh copy of the config object of the documented install body."""
    return install_body()["config"]
