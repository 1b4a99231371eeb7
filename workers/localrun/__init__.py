"""Run the fleet on this machine: redis-server, moto S3, one worker, one beat, the HTTP API, a demo website, and a
stream of sample events.

``make run``; stops on Ctrl-C, or after ``RUN_SECONDS`` seconds when set. Every server binds 127.0.0.1; objects land
in the moto bucket ``signal-demo-events`` under ``events/``. With ``SIGNAL_REDIS_URL`` set, that Redis is used.

The demo website (static pages on http://localhost:<port>, another origin than the API on 127.0.0.1) loads the real
SDKs (``workers.websites.sdk``, fetched from the npm registry and checked) with the default source's snippet
(``workers.websites.snippet``): its buttons send page, track and identify events from the browser through the
collection API.
"""
