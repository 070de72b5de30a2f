"""The TOMP-API 1.6.1 OpenAPI document as a test oracle: resolve an operation by method and
path, validate request and response bodies (``OAS30Validator`` over a ``referencing`` registry)
and the required headers. Read at run time from the conformance folder, never copied.

Known defects of the 1.6.1 file (``conformance/tomp/NOTES.md``) and how they are handled here:
- ``conditionRequireBookingData.requiredFields`` (missing comma) only matters for bodies that
  carry conditions; neither side sends any, so nothing is relaxed for it.
- ``/bookings/{id}/events`` 200 references the ``expires`` header, which is ``required: true``,
  although its description says it is mandatory only for EXTEND_EXPIRY_TIME. The simulator sends
  it on every answer, which satisfies both readings, so the check stays strict.
- ``coordinates.lat``/``lng`` have ``minimum: 0`` (not in NOTES): only places east of Greenwich
  and north of the equator validate. The tests use Amsterdam, so the check stays strict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from providers.simulators.tomp_server import JournalEntry

SPEC_URI = "urn:tomp-api:1.6.1"


class TompSpec:
    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = yaml.safe_load(path.read_text())
        resource = Resource.from_contents(self.document, default_specification=DRAFT4)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"), template)
            for template in self.document["paths"]
        ]

    # -- lookup ---------------------------------------------------------------------------------

    def _pointer(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def _deref(self, node: Any) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            node = self._pointer(node["$ref"])
        return node

    def template(self, path: str) -> str:
        matches = [template for regex, template in self._paths if regex.match(path)]
        if not matches:
            raise LookupError(f"no path in the spec matches {path}")
        # A literal segment beats a parameter (/bookings/one-stop over /bookings/{id}).
        return str(min(matches, key=lambda t: t.count("{")))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        template = self.template(path)
        item = self.document["paths"][template]
        operation = item.get(method.lower())
        if operation is None:
            raise LookupError(f"{method} {template} is not in the spec")
        return template, item, operation

    # -- validation -----------------------------------------------------------------------------

    def schema_errors(self, schema: Mapping[str, Any], instance: Any, where: str) -> list[str]:
        validator = OAS30Validator(
            dict(schema), registry=self.registry, format_checker=oas30_format_checker
        )
        return [
            f"{where}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def component_errors(self, name: str, instance: Any) -> list[str]:
        """Errors of ``instance`` against ``components.schemas.<name>``."""
        ref = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
        return self.schema_errors(ref, instance, name)

    def _body_schema(self, node: Any) -> dict[str, Any] | None:
        content = self._deref(node).get("content") if node is not None else None
        if not content:
            return None
        schema = content["application/json"]["schema"]
        # Inner refs are relative to the document: anchor the outer one at its URI.
        if "$ref" in schema:
            return {"$ref": SPEC_URI + schema["$ref"]}
        return {"allOf": [schema], "components": self.document["components"]}

    def request_errors(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> list[str]:
        template, item, operation = self.operation(method, path)
        where = f"request {method} {template}"
        errors: list[str] = []
        lower = {k.lower() for k in headers}
        for parameter in [*item.get("parameters", ()), *operation.get("parameters", ())]:
            parameter = self._deref(parameter)
            required = parameter["in"] == "header" and parameter.get("required")
            if required and parameter["name"].lower() not in lower:
                errors.append(f"{where}: required header {parameter['name']} missing")
        schema = self._body_schema(operation.get("requestBody"))
        if schema is None:
            if body is not None:
                errors.append(f"{where}: the spec defines no request body")
        elif body is None:
            if self._deref(operation["requestBody"]).get("required"):
                errors.append(f"{where}: required request body missing")
        else:
            errors += self.schema_errors(schema, body, where)
        return errors

    def response_errors(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: Any
    ) -> list[str]:
        template, _, operation = self.operation(method, path)
        where = f"response {status} to {method} {template}"
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"{where}: status not in the spec"]
        response = self._deref(response)
        errors: list[str] = []
        lower = {k.lower(): v for k, v in headers.items()}
        for name, header in (response.get("headers") or {}).items():
            header = self._deref(header)
            value = lower.get(name.lower())
            if value is None:
                if header.get("required"):
                    errors.append(f"{where}: required header {name} missing")
            elif header.get("schema", {}).get("format") == "http-date":
                try:
                    parsedate_to_datetime(value)
                except (TypeError, ValueError):
                    errors.append(f"{where}: header {name} is not an HTTP date: {value!r}")
        schema = self._body_schema(response)
        if schema is None:
            if body is not None:
                errors.append(f"{where}: the spec defines no content, got a body")
        elif body is None:
            errors.append(f"{where}: body missing")
        else:
            errors += self.schema_errors(schema, body, where)
        return errors

    def journal_errors(
        self, entries: Iterable[JournalEntry], *, requests_from: str | None = None
    ) -> list[str]:
        """Every response, and every request whose ``maas-id`` is ``requests_from`` (a test's
        deliberately broken requests are left out), checked against the spec."""
        errors: list[str] = []
        for entry in entries:
            if requests_from is None or entry.request_headers.get("maas-id") == requests_from:
                errors += self.request_errors(
                    entry.method, entry.path, entry.request_headers, entry.request_body
                )
            if entry.status is not None:
                errors += self.response_errors(
                    entry.method,
                    entry.path,
                    entry.status,
                    entry.response_headers,
                    entry.response_body,
                )
        return errors


@cache
def load_spec(conformance: Path) -> TompSpec:
    return TompSpec(conformance / "tomp" / "TOMP-API-1.6.1.yaml")
