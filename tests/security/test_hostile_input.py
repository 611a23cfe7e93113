"""Hostile input at every endpoint: each query argument, path code, JSON field, form field and
uploaded file of the security matrix's requests is replaced in turn by values an attacker (or a
broken client) sends — NUL, lone surrogates, lists, objects, 10^400, NaN, booleans, huge strings,
JSON nested 10,000 deep — and every answer must be a 4xx in the one error shape naming the field,
or a success; never a server error."""
from __future__ import annotations

import io
import json
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from tests.security.test_matrix import ROUTES, _csrf, _fill, world  # noqa: F401 (world is a fixture)

QUERY_VALUES = ("\x00", "a\x00b", "\ufffd\ufffd", "-1", "1e400", "NaN", "inf", "[]", "{}", "x" * 5000,
                "9" * 40, "2026-13-45", "' OR 1=1 --", "\u202e", " TZ1", "TZ1\n")
# JSON values for a field, as raw JSON text so that what json.dumps cannot write is sent too.
BODY_VALUES = ('"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"\\udfff x"', "[1, 2]", '{"a": 1}', "1e400",
               "-1e400", "NaN", "Infinity", "true", "false", "null", "-1", "1" + "0" * 400, "0.5",
               '"' + "x" * 100_000 + '"', '"2026-13-45"', "[" * 200 + "]" * 200, '""', '" TZ1"')
WHOLE_BODIES = ("[]", "1", '"x"', "{", "[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000,
                "\x00", '{"a": NaN}', "")
FILES = {
    "nan.geojson": json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "code": "TZ1A9"}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}
    ).replace("[1, 1]", "[NaN, 1]").encode(),
    "inf.geojson": b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"X"},'
                   b'"geometry":{"type":"Point","coordinates":[1e400,1]}}]}',
    "not.zip": b"PK\x03\x04 this is not a zip archive",
    "empty.gpx": b"",
    "nul.csv": b"code,wkt\nX\x00,POINT(1 1)\n",
    "deep.geojson": b"[" * 10_000 + b"]" * 10_000,
    "bad.gpkg": b"SQLite format 3\x00" + b"\x00" * 100,
    "t.gpx": b'<?xml version="1.0"?><gpx><trk><trkseg><trkpt lat="NaN" lon="1e400"><time>x</time></trkpt>'
             b'<trkpt lat="91" lon="10"/></trkseg></trk></gpx>',
    "bomb.gpx": b'<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
                b']><gpx><trk><name>&b;</name></trk></gpx>',
}


def _problem(response) -> str | None:
    """What is wrong with the answer to a hostile request, or None."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.get_data(as_text=True)[:200]}"
    if status >= 400 and response.mimetype == "application/json":
        error = (response.get_json(silent=True) or {}).get("error") or {}
        if not (error.get("code") and error.get("message")):
            return f"{status} without the error shape"
    return None


def _requests(ids: dict):
    """(description, method, url, raw JSON body or None, form or None) for every hostile variant."""
    for endpoint, (method, inside, _) in ROUTES.items():
        if inside is None:
            continue
        url, body, form = inside
        url = _fill(url, ids)
        body = _fill(body, ids) if body is not None else None
        base_body = json.dumps(body) if body is not None else None
        for where, variant in _query_and_path_variants(url):
            yield (endpoint, *where), method, variant, base_body, form
        for where, raw in _body_variants(body):
            yield (endpoint, *where), method, url, raw, None
        for where, variant in _form_variants(form):
            yield (endpoint, *where), method, url, None, variant


def _query_and_path_variants(url: str):
    """Each query argument, then each code- or id-like path segment, replaced by hostile values."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    for i, (name, _) in enumerate(query):
        for value in QUERY_VALUES:
            mutated = query[:i] + [(name, value)] + query[i + 1:]
            yield (name, value), f"{parts.path}?{urlencode(mutated)}"
    segments = parts.path.split("/")
    for i, segment in enumerate(segments):
        if re.fullmatch(r"TZ\w+|\d+|[A-Z]+-\d", segment):
            for value in ("%00", "%F0%28", "..%2F..", "1e400", "-1", "9" * 30, "%20TZ1"):
                path = "/".join(segments[:i] + [value] + segments[i + 1:])
                yield ("path", value), f"{path}?{parts.query}"


def _body_variants(body: dict | None):
    """Each JSON field replaced by hostile raw JSON, then whole hostile bodies."""
    if body is None:
        return
    for key in body:
        for value in BODY_VALUES:
            raw = json.dumps({k: v for k, v in body.items() if k != key})[:-1]
            yield (key, value[:20]), (raw + ", " if raw != "{" else raw) + json.dumps(key) + ": " + value + "}"
    for raw in WHOLE_BODIES:
        yield ("body", raw[:20]), raw


def _form_variants(form: dict | None):
    """Each uploaded file replaced by a hostile file, each form field by a hostile value."""
    for key in form or {}:
        if isinstance(form[key], tuple):
            for name, content in FILES.items():
                yield (key, name), {**form, key: (name, content)}
        else:
            for value in QUERY_VALUES:
                yield (key, value[:20]), {**form, key: value}


def test_no_input_gives_a_server_error(app, client, login, session, world):  # noqa: F811
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a server error is an answer to collect, not a crash
    login("admin")
    headers = _csrf(client)
    sent, problems = 0, []
    for where, method, url, raw, form in _requests(world):
        if form is not None:
            data = {k: (io.BytesIO(v[1]), v[0]) if isinstance(v, tuple) else v for k, v in form.items()}
            response = client.open(url, method=method, data=data, headers=headers,
                                   content_type="multipart/form-data")
        elif raw is not None:
            response = client.open(url, method=method, data=raw.encode("utf-8", "surrogatepass"),
                                   headers=headers, content_type="application/json")
        else:
            response = client.open(url, method=method, headers=headers)
        problem = _problem(response)
        if problem:
            problems.append((where, problem))
        sent += 1
    assert problems == [], "\n".join(f"{w}: {p}" for w, p in problems)
    assert sent > 1500   # every query argument, path code, JSON field and upload of the matrix


def test_a_path_with_nul_or_bad_utf8_is_a_client_error(client, login):
    login("admin")
    for path in ("/api/areas/%00", "/api/areas/%FF%FE", "/api/incidents/%00", "/api/risk/%00/history",
                 "/api/units/%00/shifts", "/api/changes/" + quote("1\x00"), "/api/areas?parent=%00"):
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
