import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NONE: _ClassVar[LogLevel]
    INFO: _ClassVar[LogLevel]
    DEBUG: _ClassVar[LogLevel]
    WARNING: _ClassVar[LogLevel]
    ERROR: _ClassVar[LogLevel]
    AUDIT: _ClassVar[LogLevel]

class ModelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[ModelStatus]
    IN_PROGRESS: _ClassVar[ModelStatus]
    OK: _ClassVar[ModelStatus]
    FAILED: _ClassVar[ModelStatus]
NONE: LogLevel
INFO: LogLevel
DEBUG: LogLevel
WARNING: LogLevel
ERROR: LogLevel
AUDIT: LogLevel
UNKNOWN: ModelStatus
IN_PROGRESS: ModelStatus
OK: ModelStatus
FAILED: ModelStatus

class Response(_message.Message):
    __slots__ = ("response", "parameters")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    response: str
    parameters: str
    def __init__(self, response: _Optional[str] = ..., parameters: _Optional[str] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("client_id", "status", "log_level", "timestamp", "type")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    status: str
    log_level: LogLevel
    timestamp: _timestamp_pb2.Timestamp
    type: str
    def __init__(self, client_id: _Optional[str] = ..., status: _Optional[str] = ..., log_level: _Optional[_Union[LogLevel, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ...) -> None: ...

class ModelUpdate(_message.Message):
    __slots__ = ("client_id", "model_id", "model_update_id", "correlation_id", "timestamp", "meta", "config", "round_id", "session_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    model_id: str
    model_update_id: str
    correlation_id: str
    timestamp: _timestamp_pb2.Timestamp
    meta: str
    config: str
    round_id: str
    session_id: str
    def __init__(self, client_id: _Optional[str] = ..., model_id: _Optional[str] = ..., model_update_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., meta: _Optional[str] = ..., config: _Optional[str] = ..., round_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class ModelValidation(_message.Message):
    __slots__ = ("client_id", "model_id", "data", "correlation_id", "timestamp", "session_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    model_id: str
    data: str
    correlation_id: str
    timestamp: _timestamp_pb2.Timestamp
    session_id: str
    def __init__(self, client_id: _Optional[str] = ..., model_id: _Optional[str] = ..., data: _Optional[str] = ..., correlation_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class ModelMetric(_message.Message):
    __slots__ = ("client_id", "metrics", "timestamp", "step", "model_id", "round_id", "session_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    metrics: _containers.RepeatedCompositeFieldContainer[MetricElem]
    timestamp: _timestamp_pb2.Timestamp
    step: _wrappers_pb2.UInt32Value
    model_id: str
    round_id: str
    session_id: str
    def __init__(self, client_id: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[MetricElem, _Mapping]]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step: _Optional[_Union[_wrappers_pb2.UInt32Value, _Mapping]] = ..., model_id: _Optional[str] = ..., round_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class MetricElem(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: float
    def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class AttributeMessage(_message.Message):
    __slots__ = ("client_id", "attributes", "timestamp")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeElem]
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, client_id: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[AttributeElem, _Mapping]]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AttributeElem(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class TelemetryMessage(_message.Message):
    __slots__ = ("client_id", "telemetries", "timestamp", "record_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TELEMETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    telemetries: _containers.RepeatedCompositeFieldContainer[TelemetryElem]
    timestamp: _timestamp_pb2.Timestamp
    record_id: str
    def __init__(self, client_id: _Optional[str] = ..., telemetries: _Optional[_Iterable[_Union[TelemetryElem, _Mapping]]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., record_id: _Optional[str] = ...) -> None: ...

class TelemetryElem(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: float
    def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class TelemetryRecord(_message.Message):
    __slots__ = ("telemetry_id", "client_id", "timestamp", "key", "payload")
    TELEMETRY_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    telemetry_id: str
    client_id: str
    timestamp: _timestamp_pb2.Timestamp
    key: str
    payload: str
    def __init__(self, telemetry_id: _Optional[str] = ..., client_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key: _Optional[str] = ..., payload: _Optional[str] = ...) -> None: ...

class AttributeRecord(_message.Message):
    __slots__ = ("attribute_id", "client_id", "timestamp", "key", "payload")
    ATTRIBUTE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    attribute_id: str
    client_id: str
    timestamp: _timestamp_pb2.Timestamp
    key: str
    payload: str
    def __init__(self, attribute_id: _Optional[str] = ..., client_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key: _Optional[str] = ..., payload: _Optional[str] = ...) -> None: ...

class RecordAck(_message.Message):
    __slots__ = ("record_ids",)
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    record_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, record_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class InferenceResult(_message.Message):
    __slots__ = ("inference_result_id", "node_id", "timestamp", "key", "payload", "inference_id", "model_id")
    INFERENCE_RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    inference_result_id: str
    node_id: str
    timestamp: _timestamp_pb2.Timestamp
    key: str
    payload: str
    inference_id: str
    model_id: str
    def __init__(self, inference_result_id: _Optional[str] = ..., node_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key: _Optional[str] = ..., payload: _Optional[str] = ..., inference_id: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class TaskRequest(_message.Message):
    __slots__ = ("client_id", "model_id", "data", "correlation_id", "timestamp", "session_id", "round_id", "type", "status")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    model_id: str
    data: str
    correlation_id: str
    timestamp: str
    session_id: str
    round_id: str
    type: str
    status: str
    def __init__(self, client_id: _Optional[str] = ..., model_id: _Optional[str] = ..., data: _Optional[str] = ..., correlation_id: _Optional[str] = ..., timestamp: _Optional[str] = ..., session_id: _Optional[str] = ..., round_id: _Optional[str] = ..., type: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class ActivityReport(_message.Message):
    __slots__ = ("node_id", "correlation_id", "status", "done", "response", "command_type", "parameters", "started_at", "completed_at")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    correlation_id: str
    status: str
    done: bool
    response: str
    command_type: str
    parameters: str
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, node_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., status: _Optional[str] = ..., done: _Optional[bool] = ..., response: _Optional[str] = ..., command_type: _Optional[str] = ..., parameters: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("client_id", "heartbeat_interval_ms")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    heartbeat_interval_ms: int
    def __init__(self, client_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class ClientAvailableMessage(_message.Message):
    __slots__ = ("client_id", "data", "timestamp")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    data: str
    timestamp: str
    def __init__(self, client_id: _Optional[str] = ..., data: _Optional[str] = ..., timestamp: _Optional[str] = ...) -> None: ...

class ClientAnnounceRequest(_message.Message):
    __slots__ = ("client_id", "type", "parameters")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    type: str
    parameters: str
    def __init__(self, client_id: _Optional[str] = ..., type: _Optional[str] = ..., parameters: _Optional[str] = ...) -> None: ...

class BacklogReport(_message.Message):
    __slots__ = ("client_id", "backlog_total", "backlog_dropped_total", "backlog_oldest_age_ms")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_DROPPED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_OLDEST_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    backlog_total: int
    backlog_dropped_total: int
    backlog_oldest_age_ms: float
    def __init__(self, client_id: _Optional[str] = ..., backlog_total: _Optional[int] = ..., backlog_dropped_total: _Optional[int] = ..., backlog_oldest_age_ms: _Optional[float] = ...) -> None: ...

class ClientReport(_message.Message):
    __slots__ = ("client_id", "reports", "poll_interval_ms", "skip_polling_tasks")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    POLL_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SKIP_POLLING_TASKS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    reports: _containers.RepeatedCompositeFieldContainer[ActivityReport]
    poll_interval_ms: int
    skip_polling_tasks: bool
    def __init__(self, client_id: _Optional[str] = ..., reports: _Optional[_Iterable[_Union[ActivityReport, _Mapping]]] = ..., poll_interval_ms: _Optional[int] = ..., skip_polling_tasks: _Optional[bool] = ...) -> None: ...

class CombinerDirective(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRequest]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskRequest, _Mapping]]] = ...) -> None: ...

class ModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ModelResponse(_message.Message):
    __slots__ = ("status", "message")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    status: ModelStatus
    message: str
    def __init__(self, status: _Optional[_Union[ModelStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class RoundConfig(_message.Message):
    __slots__ = ("session_id", "round_id", "round_index", "model_id", "round_timeout", "min_clients", "requested_clients", "buffer_size", "aggregator", "aggregator_kwargs", "helper", "client_settings", "max_update_norm", "clip_updates")
    class AggregatorKwargsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MIN_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    BUFFER_SIZE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_KWARGS_FIELD_NUMBER: _ClassVar[int]
    HELPER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    MAX_UPDATE_NORM_FIELD_NUMBER: _ClassVar[int]
    CLIP_UPDATES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    round_id: str
    round_index: int
    model_id: str
    round_timeout: float
    min_clients: int
    requested_clients: int
    buffer_size: int
    aggregator: str
    aggregator_kwargs: _containers.ScalarMap[str, float]
    helper: str
    client_settings: str
    max_update_norm: float
    clip_updates: bool
    def __init__(self, session_id: _Optional[str] = ..., round_id: _Optional[str] = ..., round_index: _Optional[int] = ..., model_id: _Optional[str] = ..., round_timeout: _Optional[float] = ..., min_clients: _Optional[int] = ..., requested_clients: _Optional[int] = ..., buffer_size: _Optional[int] = ..., aggregator: _Optional[str] = ..., aggregator_kwargs: _Optional[_Mapping[str, float]] = ..., helper: _Optional[str] = ..., client_settings: _Optional[str] = ..., max_update_norm: _Optional[float] = ..., clip_updates: _Optional[bool] = ...) -> None: ...

class ValidationConfig(_message.Message):
    __slots__ = ("session_id", "round_id", "model_id", "timeout", "client_ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    round_id: str
    model_id: str
    timeout: float
    client_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., round_id: _Optional[str] = ..., model_id: _Optional[str] = ..., timeout: _Optional[float] = ..., client_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ClientResult(_message.Message):
    __slots__ = ("client_id", "num_examples", "train_seconds", "fold_seconds", "meta", "received_at", "delivery")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FOLD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    num_examples: int
    train_seconds: float
    fold_seconds: float
    meta: str
    received_at: _timestamp_pb2.Timestamp
    delivery: str
    def __init__(self, client_id: _Optional[str] = ..., num_examples: _Optional[int] = ..., train_seconds: _Optional[float] = ..., fold_seconds: _Optional[float] = ..., meta: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivery: _Optional[str] = ...) -> None: ...

class RejectedUpdate(_message.Message):
    __slots__ = ("client_id", "reason")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    reason: str
    def __init__(self, client_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RoundProgress(_message.Message):
    __slots__ = ("round_id", "stage", "clients_selected", "updates_received", "updates_rejected", "client_id", "message", "elapsed")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_SELECTED_FIELD_NUMBER: _ClassVar[int]
    UPDATES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    UPDATES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    stage: str
    clients_selected: int
    updates_received: int
    updates_rejected: int
    client_id: str
    message: str
    elapsed: float
    def __init__(self, round_id: _Optional[str] = ..., stage: _Optional[str] = ..., clients_selected: _Optional[int] = ..., updates_received: _Optional[int] = ..., updates_rejected: _Optional[int] = ..., client_id: _Optional[str] = ..., message: _Optional[str] = ..., elapsed: _Optional[float] = ...) -> None: ...

class RoundResult(_message.Message):
    __slots__ = ("round_id", "ok", "error", "model_id", "num_examples", "clients", "rejected", "validations", "seconds")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    VALIDATIONS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    ok: bool
    error: str
    model_id: str
    num_examples: int
    clients: _containers.RepeatedCompositeFieldContainer[ClientResult]
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedUpdate]
    validations: int
    seconds: float
    def __init__(self, round_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., model_id: _Optional[str] = ..., num_examples: _Optional[int] = ..., clients: _Optional[_Iterable[_Union[ClientResult, _Mapping]]] = ..., rejected: _Optional[_Iterable[_Union[RejectedUpdate, _Mapping]]] = ..., validations: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class RoundEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: RoundProgress
    result: RoundResult
    def __init__(self, progress: _Optional[_Union[RoundProgress, _Mapping]] = ..., result: _Optional[_Union[RoundResult, _Mapping]] = ...) -> None: ...

class CombinerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConnectedClient(_message.Message):
    __slots__ = ("client_id", "name", "last_seen")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    name: str
    last_seen: float
    def __init__(self, client_id: _Optional[str] = ..., name: _Optional[str] = ..., last_seen: _Optional[float] = ...) -> None: ...

class CombinerInfo(_message.Message):
    __slots__ = ("name", "clients")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    clients: _containers.RepeatedCompositeFieldContainer[ConnectedClient]
    def __init__(self, name: _Optional[str] = ..., clients: _Optional[_Iterable[_Union[ConnectedClient, _Mapping]]] = ...) -> None: ...

class AsyncConfig(_message.Message):
    __slots__ = ("session_id", "model_id", "version", "max_concurrency", "staleness", "staleness_exponent", "max_staleness", "task_timeout", "helper", "client_settings", "max_update_norm", "clip_updates")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    STALENESS_FIELD_NUMBER: _ClassVar[int]
    STALENESS_EXPONENT_FIELD_NUMBER: _ClassVar[int]
    MAX_STALENESS_FIELD_NUMBER: _ClassVar[int]
    TASK_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    HELPER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    MAX_UPDATE_NORM_FIELD_NUMBER: _ClassVar[int]
    CLIP_UPDATES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    model_id: str
    version: int
    max_concurrency: int
    staleness: str
    staleness_exponent: float
    max_staleness: int
    task_timeout: float
    helper: str
    client_settings: str
    max_update_norm: float
    clip_updates: bool
    def __init__(self, session_id: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., staleness: _Optional[str] = ..., staleness_exponent: _Optional[float] = ..., max_staleness: _Optional[int] = ..., task_timeout: _Optional[float] = ..., helper: _Optional[str] = ..., client_settings: _Optional[str] = ..., max_update_norm: _Optional[float] = ..., clip_updates: _Optional[bool] = ...) -> None: ...

class NewVersion(_message.Message):
    __slots__ = ("model_id", "version")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class FlushBuffer(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class AsyncCommand(_message.Message):
    __slots__ = ("start", "flush", "version")
    START_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    start: AsyncConfig
    flush: FlushBuffer
    version: NewVersion
    def __init__(self, start: _Optional[_Union[AsyncConfig, _Mapping]] = ..., flush: _Optional[_Union[FlushBuffer, _Mapping]] = ..., version: _Optional[_Union[NewVersion, _Mapping]] = ...) -> None: ...

class FoldedUpdate(_message.Message):
    __slots__ = ("client", "base_version", "staleness", "staleness_weight")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STALENESS_FIELD_NUMBER: _ClassVar[int]
    STALENESS_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    client: ClientResult
    base_version: int
    staleness: int
    staleness_weight: float
    def __init__(self, client: _Optional[_Union[ClientResult, _Mapping]] = ..., base_version: _Optional[int] = ..., staleness: _Optional[int] = ..., staleness_weight: _Optional[float] = ...) -> None: ...

class BufferFlushed(_message.Message):
    __slots__ = ("version", "model_id", "num_examples", "updates")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    version: int
    model_id: str
    num_examples: int
    updates: _containers.RepeatedCompositeFieldContainer[FoldedUpdate]
    def __init__(self, version: _Optional[int] = ..., model_id: _Optional[str] = ..., num_examples: _Optional[int] = ..., updates: _Optional[_Iterable[_Union[FoldedUpdate, _Mapping]]] = ...) -> None: ...

class AsyncEvent(_message.Message):
    __slots__ = ("folded", "rejected", "flushed", "progress")
    FOLDED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    FLUSHED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    folded: FoldedUpdate
    rejected: RejectedUpdate
    flushed: BufferFlushed
    progress: RoundProgress
    def __init__(self, folded: _Optional[_Union[FoldedUpdate, _Mapping]] = ..., rejected: _Optional[_Union[RejectedUpdate, _Mapping]] = ..., flushed: _Optional[_Union[BufferFlushed, _Mapping]] = ..., progress: _Optional[_Union[RoundProgress, _Mapping]] = ...) -> None: ...
