"""Custom scalars: the Python types, and the scalar map the schema is built with."""

from __future__ import annotations

from typing import Any, NewType

import strawberry

# GraphQL's Int is 32-bit; amounts in minor units of currencies such as IDR or KRW exceed it.
Long = NewType("Long", int)

SCALAR_MAP: dict[object, Any] = {
    Long: strawberry.scalar(
        name="Long",
        serialize=int,
        parse_value=int,
        description="A 64-bit integer, serialized as a JSON number.",
    )
}
