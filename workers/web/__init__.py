"""The fleet's HTTP face (FastAPI on uvicorn), one module per face.

``app`` (factory and server), ``common`` (state, the admin check, errors, bodies), ``admin`` (the admin API),
``collection`` (Segment- and RudderStack-compatible collection, for servers and websites), ``cors`` (CORS of the
collection routes only), ``batcher`` (collection's micro-batcher).

Two powers, never interchangeable: the admin token (``SIGNAL_ADMIN_TOKEN``, ``Authorization: Bearer``) for
``/v1/admin/...`` and ``/metrics`` (without the setting those routes answer 503; a missing or wrong token 401), and a
source's write key for the collection routes.
"""
