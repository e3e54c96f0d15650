"""The process's one verified TLS context (the CA bundle httpx uses: certifi, or SSL_CERT_FILE
and SSL_CERT_DIR when set).

httpx builds a context per client by default and each loads the whole CA bundle: about
0.8 MB a client, five times over in a daemon with four targets. A context is made to be shared
by any number of connections, so the feed downloads and every platform client use this one.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def verified_context() -> ssl.SSLContext:
    """Certificates and host names verified; HTTP/1.1 offered by ALPN (newsbot speaks no
    HTTP/2, and each transport sets the same protocols before it connects)."""
    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
