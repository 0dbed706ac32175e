"""One router factory for the read side of every entity family: list, count and get by id.

Filters are the entity's scalar fields as query parameters (``?session_id=...&status=Finished``),
typed from the entity so /docs lists them and bad values get 422 naming the parameter.
"""

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, create_model

from scaleout.api import deps
from scaleout.store.entities import Entity
from scaleout.store.schema import scalar_fields
from scaleout.store.statestore import Repository, Statestore

PAGING = frozenset({"limit", "skip", "sort_key", "sort_order"})
# A list answers one page unless asked for more: a federation of thousands of clients (or a long
# history of events) never goes out in one answer. `count` is the total; the next page is at skip + limit.
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_SKIP = 2**53
Limit = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_LIMIT,
        description=f"page size: {DEFAULT_LIMIT} if omitted, at most {MAX_LIMIT}; "
        "`count` is the total, the next page starts at skip + limit",
    ),
]
Skip = Annotated[int, Query(ge=0, le=MAX_SKIP, description="matches to skip before the page")]
# Integer filters are compared by the statestore as 64-bit integers (SQLite, MongoDB).
INT64 = {"ge": -(2**63), "le": 2**63 - 1}


class Count(BaseModel):
    count: int = Field(description="records matching every filter")


def list_response_model(entity: type[Entity]) -> type[BaseModel]:
    """``{"count": total before paging, "result": [...]}`` for one entity, named for /docs."""
    return create_model(
        f"{entity.__name__}List",
        count=(int, Field(description="records matching every filter, before paging")),
        result=(list[entity], Field(description="this page of them")),
    )


def filter_dependency(family: str, entity: type[Entity]) -> Callable[..., dict[str, Any]]:
    """A dependency taking each scalar field as an optional typed query parameter; unknown ones get 422."""
    fields = scalar_fields(entity)

    def filters(request: Request, **values: Any) -> dict[str, Any]:
        unknown = sorted(set(request.query_params) - set(fields) - PAGING)
        if unknown:
            raise RequestValidationError(
                [
                    {
                        "type": "extra_forbidden",
                        "loc": ("query", name),
                        "msg": f"unknown query parameter {name!r} for {family}; "
                        f"filter on one of: {', '.join(fields)}",
                        "input": request.query_params[name],
                    }
                    for name in unknown
                ]
            )
        return {name: value for name, value in values.items() if value is not None}

    parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    parameters += [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=kind | None,
            default=Query(
                None,
                description=f"only {family} whose {name} equals this",
                **(INT64 if kind is int else {}),
            ),
        )
        for name, kind in fields.items()
    ]
    filters.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return filters


def entity_router(
    family: str, entity: type[Entity], select: Callable[[Statestore], Repository[Any]]
) -> APIRouter:
    """``GET /``, ``GET /count`` and ``GET /{id}`` for one entity family."""
    router = APIRouter(prefix=f"/{family}", tags=[family])
    Where = Annotated[dict[str, Any], Depends(filter_dependency(family, entity))]
    noun = entity.__name__

    # Sync endpoints: the statestore blocks, so FastAPI runs these in its threadpool.
    @router.get(
        "/",
        response_model=list_response_model(entity),
        summary=f"List {family}",
        description=f"The {family} whose fields equal every filter given, as `count` (all that match) and "
        f"`result` (this page: `limit` ({DEFAULT_LIMIT} by default) from `skip`, ordered by `sort_key`). "
        "An unknown filter is a 422 naming the filters there are.",
    )
    def list_items(
        where: Where,
        store: deps.StatestoreDep,
        limit: Limit = DEFAULT_LIMIT,
        skip: Skip = 0,
        sort_key: Annotated[str, Query(description="a scalar field; ids sort in creation order")] = "id",
        sort_order: Annotated[
            Literal["asc", "desc"], Query(description="ascending or descending by sort_key")
        ] = "asc",
    ) -> dict[str, Any]:
        page = select(store).list(where, sort_key=sort_key, sort_order=sort_order, limit=limit, skip=skip)
        return {"count": page.count, "result": page.items}

    @router.get(
        "/count",
        response_model=Count,
        summary=f"Count {family}",
        description=f"How many {family} match every filter given (the same filters as the list).",
    )
    def count_items(where: Where, store: deps.StatestoreDep) -> dict[str, int]:
        return {"count": select(store).count(where)}

    @router.get(
        "/{id}",
        response_model=entity,
        summary=f"Get one {noun}",
        description=f"The {noun} with this id; 404 naming the id when there is none.",
    )
    def get_item(id: str, store: deps.StatestoreDep) -> Any:
        return select(store).get(id)  # NotFound is answered 404 naming the entity and id (app.py)

    return router
