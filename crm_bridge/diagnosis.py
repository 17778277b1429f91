"""Why a connection to the broker failed, in one sentence an installer can act on.

paho reports a failed connect through ``on_connect_fail`` (the ``OSError`` it caught is the exception
being handled at that moment) and a refusal after the TLS handshake (TLS 1.3 sends the broker's
verdict on our client certificate only then) as a lost connection, with the SSL error only in its
log. ``describe`` turns either into a reason; no reason ever holds a secret (certificates and keys
are named by their path).
"""

from __future__ import annotations

import socket
import ssl

from .settings import MqttSettings

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) the phone can meet when it checks the broker.
_NOT_YET_VALID = 9
_EXPIRED = 10
_UNTRUSTED = {2, 18, 19, 20, 21}
_WRONG_HOST = {62, 64}  # hostname mismatch, IP address mismatch

# What the broker says about our client certificate, by OpenSSL's alert names.
_CERT_REQUIRED = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE")
_CERT_REFUSED = (
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "ACCESS_DENIED",
)


def describe(error: BaseException | None, settings: MqttSettings) -> str:
    """The reason ``error`` (from a connect attempt) gives, naming the setting to look at."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return _server_certificate(error, settings)
    if isinstance(error, ssl.SSLError):
        return describe_tls_text(f"{error.reason or ''} {error}", settings)
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on that port?)"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the broker's host name {settings.host!r}"
    if isinstance(error, TimeoutError | socket.timeout):
        return "no answer (timed out)"
    if isinstance(error, OSError):
        return f"cannot reach the broker ({error.strerror or error})"
    return "cannot reach the broker"


def describe_tls_text(text: str, settings: MqttSettings) -> str:
    """The reason in an SSL error's text (as paho logs a failed read after the handshake)."""
    upper = text.upper()
    if any(alert in upper for alert in _CERT_REQUIRED):
        if settings.client_cert is None:
            return (
                "TLS: the broker requires a client certificate and the phone has none "
                "(set mqtt.client_cert and mqtt.client_key)"
            )
        return f"TLS: the broker refused the phone's client certificate {settings.client_cert}"
    for alert in _CERT_REFUSED:
        if alert in upper:
            what = alert.lower().replace("_", " ")
            return f"TLS: the broker refused the phone's client certificate {settings.client_cert} ({what})"
    return f"TLS: {text.strip()}"  # e.g. the broker ended the TLS session


def describe_dropped_handshake(settings: MqttSettings) -> str | None:
    """The reason for a TLS connection the broker closed before its CONNACK with no SSL error read.

    Under TLS 1.3 the broker's verdict on the client certificate arrives after the handshake; when it
    closes the socket before paho has read the alert, all that is seen is a lost connection. Without
    a client certificate that is the same refusal as the alert would have said.
    """
    if settings.tls and settings.client_cert is None:
        return describe_tls_text("CERTIFICATE_REQUIRED", settings)
    return None


def is_tls_error_text(text: str) -> bool:
    """Whether a line of paho's log reports an SSL error (what ``describe_tls_text`` reads)."""
    return "[SSL" in text


def _server_certificate(error: ssl.SSLCertVerificationError, settings: MqttSettings) -> str:
    code = error.verify_code
    if code == _EXPIRED:
        return "TLS: the broker's certificate has expired (renew the broker's certfile)"
    if code == _NOT_YET_VALID:
        return "TLS: the broker's certificate is not valid yet (is the phone's clock right?)"
    if code in _WRONG_HOST:
        return (
            f"TLS: the broker's certificate is not valid for {settings.host!r} "
            "(mqtt.host must be a name or address in its subjectAltName)"
        )
    if code in _UNTRUSTED:
        trusted = f"mqtt.ca_file {settings.ca_file}" if settings.ca_file else "the system's CA store"
        return f"TLS: the broker's certificate is not signed by a CA the phone trusts ({trusted})"
    return f"TLS: the broker's certificate was refused ({error.verify_message})"
