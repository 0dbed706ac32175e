"""Models: upload a seed model, download any model, and walk the model trail."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from scaleout.api import compat, deps
from scaleout.api.checks import check_seed_model
from scaleout.api.routes_entities import DEFAULT_LIMIT, MAX_LIMIT, Limit, Skip, list_response_model
from scaleout.api.settings import ApiSettings
from scaleout.api.streaming import stream_object
from scaleout.api.uploads import sha256_and_size
from scaleout.errors import NotFound
from scaleout.store.entities import Model, new_id
from scaleout.store.statestore import Statestore

# A missing model raises NotFound in the store, which the app answers 404 naming the id.
router = APIRouter(prefix="/models", tags=["models"])
ModelList = list_response_model(Model)


def active_helper(store: Statestore, settings: ApiSettings) -> str:
    """The helper of the active package; the default one before a package is uploaded."""
    try:
        return store.packages.active().helper
    except NotFound:
        return settings.default_helper


@router.post("/", response_model=Model, status_code=201, summary="Upload a seed model (no parent)")
def upload_seed_model(
    request: Request,
    store: deps.StatestoreDep,
    repository: deps.RepositoryDep,
    settings: deps.SettingsDep,
    file: Annotated[
        UploadFile | None, File(description="the model file, e.g. an .npz written by numpyhelper")
    ] = None,
    file_token: Annotated[str | None, Form(description="instead of file: a chunked upload's token")] = None,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Model:
    """Checked loadable by the active helper (422 with the reason) before anything is stored."""
    with compat.uploaded_file(request, file, file_token, "seed") as (stream, file_name):
        check_seed_model(stream, active_helper(store, settings), settings.max_model_bytes)
        checksum, size = sha256_and_size(stream)
        model = Model(id=new_id(), name=name or file_name, size=size, sha256=checksum)
        repository.put_model(model.id, stream)  # bytes first: a committed id always has its bytes (§4)
    return store.models.add(model)


@router.get("/{id}/download", summary="Download a model's bytes", response_class=StreamingResponse)
def download_model(id: str, store: deps.StatestoreDep, repository: deps.RepositoryDep) -> StreamingResponse:
    """The model's bytes (.npz) from the model repository."""
    model = store.models.get(id)
    stream = repository.open_model(model.id)
    return stream_object(stream, repository.model_size(model.id), f"{model.id}.npz")


@router.get("/{id}/ancestors", response_model=ModelList, summary="The trail back to the seed, parent first")
def model_ancestors(
    id: str,
    store: deps.StatestoreDep,
    include_self: Annotated[
        bool, Query(description="the model itself before its first page of ancestors (skip 0)")
    ] = False,
    limit: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_LIMIT,
            description=f"generations to walk in this page: {DEFAULT_LIMIT} if omitted, at most {MAX_LIMIT}; "
            "`count` is the whole trail's, the next page starts at skip + limit",
        ),
    ] = DEFAULT_LIMIT,
    skip: Skip = 0,
    reverse: Annotated[bool, Query(description="this page oldest first instead (FEDn's X-Reverse)")] = False,
) -> dict[str, Any]:
    """The models this one was trained from, parent first, back to the seed; a page of them.

    As FEDn's: ``limit`` counts generations (ancestors), the model itself comes on top with
    include_self, and reverse orders what was walked."""
    trail = store.models.ancestors(id, limit=limit, skip=skip)
    models = trail.items
    if include_self and skip == 0:
        models = [store.models.get(id), *models]
    if reverse:
        models.reverse()
    return {"count": trail.count + int(include_self), "result": models}


@router.get("/{id}/descendants", response_model=ModelList, summary="Every model derived from this one")
def model_descendants(
    id: str, store: deps.StatestoreDep, limit: Limit = DEFAULT_LIMIT, skip: Skip = 0
) -> dict[str, Any]:
    """Every model trained from this one, directly or not, oldest first; a page of them."""
    page = store.models.descendants(id, limit=limit, skip=skip)
    return {"count": page.count, "result": page.items}
