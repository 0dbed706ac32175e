"""Who may call what: the one access table, read by the REST middleware and the combiner's interceptor.

Three roles (ARCHITECTURE §7): **admin** (operators, the CLI, the dashboard: everything but running
rounds), **controller** (the service credential the controller uses on the combiners' Control service),
**client** (one credential per client: assignment, the active package, and the combiner's client
services for its own client id only).

Deny by default: a route or RPC that is not listed here is refused to every role, so a new one stays
closed until it is added with the roles that need it. tests/api/test_auth.py and
tests/combiner/test_auth.py walk every route and RPC with each role and compare with these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    ADMIN = "admin"
    CONTROLLER = "controller"
    CLIENT = "client"


@dataclass(frozen=True)
class Principal:
    """Who made a call: a role, and for a client the client id its credential is bound to."""

    role: Role
    client_id: str | None = None
    credential_id: str | None = None
    name: str = ""


# Where a client service call names the client it acts for: a field of the request message, or the
# call metadata (ModelService.Upload streams chunks, so the id rides in metadata as 'client-id').
ClientIdSource = Literal["request", "metadata"]


@dataclass(frozen=True)
class Rule:
    """The roles allowed one route or RPC.

    ``public``: no credential needed. ``docs``: the API docs, public only when the API is configured so.
    ``client_id``: a client may call it only under its own client id, read from there.
    """

    roles: frozenset[Role] = frozenset()
    public: bool = False
    docs: bool = False
    client_id: ClientIdSource | None = None

    def allows(self, principal: Principal) -> bool:
        return principal.role in self.roles


ADMIN = frozenset({Role.ADMIN})
ADMIN_OR_CLIENT = frozenset({Role.ADMIN, Role.CLIENT})
PUBLIC = Rule(public=True)
ADMIN_ONLY = Rule(ADMIN)
DOCS = Rule(ADMIN, docs=True)
API = "/api/v1"
# The entity families served read-only by api/routes_entities.py: list, count and get by id.
ENTITY_FAMILIES = (
    "sessions",
    "rounds",
    "models",
    "validations",
    "clients",
    "combiners",
    "packages",
    "events",
)

# (method, path template as FastAPI declares it) -> rule. HEAD is checked as GET.
REST_RULES: dict[tuple[str, str], Rule] = {
    ("GET", f"{API}/health"): PUBLIC,
    # Probes carry no credential; they learn only ok or which backend does not answer.
    ("GET", f"{API}/health/live"): PUBLIC,
    ("GET", f"{API}/health/ready"): PUBLIC,
    # The enrollment secret in the body is the credential; the route checks it.
    ("POST", f"{API}/clients/enroll"): PUBLIC,
    # The official client's token exchange (api/routes_token_exchange.py): the token in the body is
    # the credential, and the route checks it.
    ("POST", "/api/auth/refresh"): PUBLIC,
    ("POST", f"{API}/clients/token"): PUBLIC,
    # What an edge client calls (client/assignment.py, client/package_download.py, client/credential.py).
    # /clients/add checks that a client assigns itself only (api/auth.require_own_client).
    ("POST", f"{API}/clients/add"): Rule(ADMIN_OR_CLIENT),
    ("GET", f"{API}/clients/me"): Rule(ADMIN_OR_CLIENT),
    ("GET", f"{API}/packages/checksum"): Rule(ADMIN_OR_CLIENT),
    ("GET", f"{API}/packages/download"): Rule(ADMIN_OR_CLIENT),
    # Operators.
    ("POST", f"{API}/clients/tokens"): ADMIN_ONLY,
    ("GET", f"{API}/clients/tokens"): ADMIN_ONLY,
    ("DELETE", f"{API}/clients/tokens/{{id}}"): ADMIN_ONLY,
    ("POST", f"{API}/clients/enrollments"): ADMIN_ONLY,
    ("GET", f"{API}/clients/enrollments"): ADMIN_ONLY,
    ("DELETE", f"{API}/clients/enrollments/{{id}}"): ADMIN_ONLY,
    ("POST", f"{API}/packages/"): ADMIN_ONLY,
    ("GET", f"{API}/packages/active"): ADMIN_ONLY,
    ("POST", f"{API}/models/"): ADMIN_ONLY,
    ("GET", f"{API}/models/{{id}}/download"): ADMIN_ONLY,
    ("GET", f"{API}/models/{{id}}/ancestors"): ADMIN_ONLY,
    ("GET", f"{API}/models/{{id}}/descendants"): ADMIN_ONLY,
    ("POST", f"{API}/sessions/"): ADMIN_ONLY,
    ("POST", f"{API}/sessions/start"): ADMIN_ONLY,
    ("POST", f"{API}/sessions/{{id}}/start"): ADMIN_ONLY,
    ("POST", f"{API}/sessions/{{id}}/stop"): ADMIN_ONLY,
    ("GET", f"{API}/sessions/{{id}}/wait"): ADMIN_ONLY,
    ("GET", f"{API}/sessions/{{id}}/progress"): ADMIN_ONLY,
    ("GET", f"{API}/sessions/{{id}}/stats"): ADMIN_ONLY,
    ("GET", f"{API}/sessions/{{id}}/final-metrics"): ADMIN_ONLY,
    ("GET", f"{API}/clients/{{id}}/activity"): ADMIN_ONLY,
    **{
        ("GET", f"{API}/{family}/{suffix}"): ADMIN_ONLY
        for family in ENTITY_FAMILIES
        for suffix in ("", "count")
    },
    **{("GET", f"{API}/{family}/{{id}}"): ADMIN_ONLY for family in ENTITY_FAMILIES},
    # FEDn's and Scaleout's API clients (api/compat.py): operators' calls, as in FEDn.
    ("GET", f"{API}/helpers/active"): ADMIN_ONLY,
    ("PUT", f"{API}/helpers/active"): ADMIN_ONLY,
    ("GET", f"{API}/clients/config"): ADMIN_ONLY,
    ("POST", f"{API}/file-upload/init"): ADMIN_ONLY,
    ("POST", f"{API}/file-upload/{{upload_id}}/chunk"): ADMIN_ONLY,
    ("POST", f"{API}/file-upload/{{upload_id}}/complete"): ADMIN_ONLY,
    ("POST", f"{API}/file-upload/{{upload_id}}/abort"): ADMIN_ONLY,
    **{("GET", f"{API}/statuses/{suffix}"): ADMIN_ONLY for suffix in ("", "count", "{id}")},
    ("GET", "/get_controller_status"): ADMIN_ONLY,
    # The dashboard page asks for the admin token itself; its data calls are the admin routes above.
    ("GET", "/"): PUBLIC,
    ("GET", "/dashboard"): PUBLIC,
    ("GET", "/dashboard/{path:path}"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC,
    ("GET", "/docs"): DOCS,
    ("GET", "/docs/oauth2-redirect"): DOCS,
    ("GET", "/docs/assets/{path:path}"): DOCS,  # Swagger UI's and Redoc's scripts, served offline
    ("GET", "/redoc"): DOCS,
    ("GET", "/openapi.json"): DOCS,
    # Prometheus metrics: counts of clients, rounds and traffic are the federation's business, and the
    # API is the one published endpoint; Prometheus sends the admin token (authorization: credentials).
    ("GET", "/metrics"): ADMIN_ONLY,
}

CLIENT_SERVICE = "/scaleout.CombinerClient/"
MODEL_SERVICE = "/scaleout.ModelService/"
CONTROL = "/scaleout.Control/"
HEALTH = "/grpc.health.v1.Health/"

# Full gRPC method name -> rule.
RPC_RULES: dict[str, Rule] = {
    f"{CLIENT_SERVICE}TaskStream": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendHeartbeat": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendModelUpdate": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendModelValidation": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendStatus": Rule(ADMIN_OR_CLIENT, client_id="request"),
    # The official Scaleout Edge client polls instead of streaming, announces itself and sends telemetry.
    f"{CLIENT_SERVICE}PollAndReportAsync": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}Announce": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendModelMetric": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendAttributeMessage": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendTelemetryMessage": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}SendBacklogReport": Rule(ADMIN_OR_CLIENT, client_id="request"),
    f"{CLIENT_SERVICE}StreamTelemetryRecord": Rule(ADMIN_OR_CLIENT, client_id="metadata"),
    f"{CLIENT_SERVICE}StreamAttributeRecord": Rule(ADMIN_OR_CLIENT, client_id="metadata"),
    f"{CLIENT_SERVICE}StreamInferenceResult": Rule(ADMIN_OR_CLIENT, client_id="metadata"),
    f"{MODEL_SERVICE}Upload": Rule(ADMIN_OR_CLIENT, client_id="metadata"),
    f"{MODEL_SERVICE}Download": Rule(ADMIN_OR_CLIENT),
    # Rounds and validations run only for the controller: a forged RoundConfig from anyone else would
    # make real clients train.
    f"{CONTROL}StartRound": Rule(frozenset({Role.CONTROLLER})),
    f"{CONTROL}StartValidation": Rule(frozenset({Role.CONTROLLER})),
    f"{CONTROL}RunAsync": Rule(frozenset({Role.CONTROLLER})),
    # Who is connected: the controller, and operators' `scaleout combiner health`.
    f"{CONTROL}Info": Rule(frozenset({Role.CONTROLLER, Role.ADMIN})),
    # The standard health service: probes (Kubernetes, load balancers) carry no credential, and it
    # answers only SERVING or NOT_SERVING.
    f"{HEALTH}Check": PUBLIC,
    f"{HEALTH}Watch": PUBLIC,
}


def rest_rule(method: str, path_template: str) -> Rule | None:
    """The rule of one route, or None when it is not listed (then nobody may call it)."""
    return REST_RULES.get(("GET" if method == "HEAD" else method, path_template))


def allowed_roles(rule: Rule) -> str:
    """The roles of a rule for a refusal message: "admin or client"."""
    return " or ".join(sorted(rule.roles)) or "nobody"
