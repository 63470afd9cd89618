"""A PostgreSQL URL as gatewatch says it: never with its password (`redact` for messages and the console,
`hide_password` and `said` for what libpq echoes back). Imported with psycopg (an optional dependency)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg
from psycopg import conninfo as _conninfo


def redact(url: str) -> str:
    """The URL without its password, for messages and for the console that attaches."""
    if misread(url):  # libpq's reading holds pieces of the password: the URL's own, after its last @
        rest = url.split("://", 1)[-1]
        userinfo, place = rest.rsplit("@", 1)
        return f"postgresql://{userinfo.split(':', 1)[0]}@{place.split('?', 1)[0]}"
    try:
        params = _conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://…"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


def _secrets_of(url: str) -> list[str]:
    """The URL's password in every spelling a message could hold (as written, decoded), and the whole
    userinfo: a password holding `@`, `/` or `#` unescaped is read by libpq as a host or a port, and echoed."""
    found = set()
    try:
        pw = _conninfo.conninfo_to_dict(url).get("password")
        if pw:
            found.add(str(pw))
    except psycopg.Error:
        pass
    rest = url.split("://", 1)[-1]
    if "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]
        found.add(userinfo)
        if ":" in userinfo:
            raw = userinfo.split(":", 1)[1]
            found.update({raw, unquote(raw)})
    for part in re.findall(r"(?:^|[?&])password=([^&#]*)", url.split("?", 1)[-1] if "?" in url else ""):
        found.update({part, unquote(part)})
    return sorted((f for f in found if f), key=len, reverse=True)


def hide_password(text: str, url: str) -> str:
    """`text` with the URL's password (and userinfo) cut out."""
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    return text


MISREAD = (
    "the URL's user and password could not be read as written (percent-encode an @, /, #, ? or space in "
    "the password: %40, %2F, %23, %3F, %20)"
)


def misread(url: str) -> bool:
    """A password holding an unescaped `@ / # ?` or a space: libpq reads part of it as a host or a port and
    echoes that part in its errors, where no cutting-out can find it."""
    rest = url.split("://", 1)[-1]
    return rest.count("@") > 1 or ("@" in rest and any(c in rest.rsplit("@", 1)[0] for c in "/#? "))


def said(exc: BaseException, url: str) -> str:
    """What psycopg said, without the password: libpq echoes parts of a connection string it could not read."""
    if misread(url):
        return MISREAD
    return hide_password(str(exc).strip(), url)
