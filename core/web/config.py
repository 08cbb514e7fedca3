"""--web.config.file: TLS and basic auth in the Prometheus exporter-toolkit format.

Parsed strictly (unknown keys are errors), relative paths are relative to the file, and a
certificate or key that does not load fails at start-up rather than at the first scrape.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Annotated, Literal

import bcrypt
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from procpilot.core.configfile import ConfigError, Strict, format_error, load_yaml

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The toolkit's names (Go's tls.ClientAuthType). Python's ssl cannot ask for a certificate
# without verifying it, so: RequestClientCert does not ask (nothing would read an unverified
# certificate anyway, so the same clients get in), and RequireAnyClientCert verifies against
# client_ca_file (stricter than Go, never looser).
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
# The toolkit's list; the server sets every other header itself.
HeaderName = Literal[
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
]
BCRYPT_ALPHABET = frozenset("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
# Every credential the cache has not seen, and every unknown user, costs one check at the
# configured cost in a request worker. 16 still fits a first scrape into Prometheus' default
# 10 s scrape timeout on a small machine (one check took 4.8 s at 16 on a 2-core VM, 1.1 s at
# 14); 31 would take days, with nothing to stop it.
MAX_BCRYPT_COST = 16


def _bcrypt_hash(value: str) -> str:
    # Never echo the value: error messages end up in logs.
    prefix, cost, rest = value[:4], value[4:6], value[6:]
    ok = (
        prefix in ("$2a$", "$2b$", "$2y$")
        and cost.isascii()
        and cost.isdigit()
        and 4 <= int(cost) <= 31
        and rest[:1] == "$"
        and len(rest) == 54
        and set(rest[1:]) <= BCRYPT_ALPHABET
    )
    if not ok:
        raise ValueError("not a bcrypt hash (60 characters starting with $2a$, $2b$ or $2y$)")
    if int(cost) > MAX_BCRYPT_COST:
        raise ValueError(
            f"bcrypt cost {int(cost)} is above {MAX_BCRYPT_COST}, the highest accepted (every "
            "request with a new password or an unknown user pays one check at this cost); "
            "hash it again with a lower cost, e.g. htpasswd -nBC 10 USER"
        )
    # Salt and digest decode the same at any cost, so checking a copy at the lowest cost
    # proves the hash usable in about a millisecond (bcrypt refuses, for one, a salt whose
    # last character carries bits past the 128 it encodes).
    try:
        bcrypt.checkpw(b"", f"{prefix}04{rest}".encode())
    except ValueError as e:
        raise ValueError(f"not a usable bcrypt hash: {e}") from None
    return value


def _user_name(value: str) -> str:
    if ":" in value:
        raise ValueError("a basic auth user name cannot contain ':'")
    return value


def _header_value(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("a header value cannot contain line breaks")
    return value


class TLSServerConfig(Strict):
    cert_file: str
    key_file: str
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: str | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"

    # Each file is loaded by the validator of its key, so that a failure names the key and
    # the file, and a bad one fails at start-up rather than at the first scrape.
    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _existing_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative paths are relative to the web config file, as in the exporter toolkit."""
        if value is None:
            return None
        path = os.path.join((info.context or {}).get("base_dir", ""), value)
        if not os.path.isfile(path):
            raise ValueError(f"no such file: {path}")
        return path

    @field_validator("cert_file", "client_ca_file")
    @classmethod
    def _certificates(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=path)
            except (ssl.SSLError, OSError) as e:
                what = "certificate" if info.field_name == "cert_file" else "CA certificates"
                raise ValueError(f"{path}: no PEM {what} can be read: {_reason(e)}") from None
        return path

    @field_validator("key_file")
    @classmethod
    def _key_of_the_certificate(cls, path: str, info: ValidationInfo) -> str:
        cert = info.data.get("cert_file")
        if cert is None:  # cert_file failed already and says why
            return path
        try:
            # An empty password makes OpenSSL fail on encrypted keys instead of prompting.
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, path, password=b"")
        except (ssl.SSLError, OSError) as e:
            if isinstance(e, ssl.SSLError) and e.reason == "KEY_VALUES_MISMATCH":
                raise ValueError(f"{path} is not the key of the certificate in {cert}") from None
            raise ValueError(
                f"{path}: no unencrypted PEM private key can be read: {_reason(e)}"
            ) from None
        return path

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(
                f"min_version {self.min_version} is above max_version {self.max_version}"
            )
        verifies = CLIENT_AUTH[self.client_auth_type] != ssl.CERT_NONE
        if verifies and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifies and self.client_ca_file is not None:
            raise ValueError(
                f"client_ca_file is set but client_auth_type {self.client_auth_type} does not "
                "verify client certificates; use RequireAndVerifyClientCert"
            )
        return self

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.min_version]
        context.maximum_version = TLS_VERSIONS[self.max_version]
        context.load_cert_chain(self.cert_file, self.key_file, password=b"")
        context.verify_mode = CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file is not None:
            context.load_verify_locations(self.client_ca_file)
        return context


def _reason(e: OSError) -> str:
    """OpenSSL's reason code (e.g. NO_START_LINE) when there is one, else the message."""
    reason = getattr(e, "reason", None)
    return str(reason) if reason else re.sub(r" \(_ssl\.c:\d+\)$", "", str(e.strerror or e))


class HTTPServerConfig(Strict):
    headers: dict[HeaderName, Annotated[str, AfterValidator(_header_value)]] = Field(
        default_factory=dict
    )


class WebConfig(Strict):
    """Top level of --web.config.file."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[
        Annotated[str, AfterValidator(_user_name)], Annotated[str, AfterValidator(_bcrypt_hash)]
    ] = Field(default_factory=dict)


def load_web_config(path: str | None) -> WebConfig | None:
    """Load and validate --web.config.file; no file means plain HTTP without auth."""
    if path is None:
        return None
    data = load_yaml(path)
    try:
        return WebConfig.model_validate(
            {} if data is None else data, context={"base_dir": os.path.dirname(path)}
        )
    except ValidationError as e:
        raise ConfigError(format_error(path, e)) from None
