"""Agreements between docker-compose.yml, platform/ and the environment the settings read.

No Docker engine runs here, so these checks are what keeps the deployment files consistent: every
variable the app containers get is documented in platform/.env.example, the shared models volume
is where TF Serving's base_path points, ports and URLs agree, config files referenced by a service
exist, and no secret is written into the compose file. Needs only pyyaml (and protobuf, a project
dependency, to parse TF Serving's text protos); no Django, no database.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PLATFORM = ROOT / "platform"
ENV_EXAMPLE = PLATFORM / ".env.example"
MODELS_CONFIG = PLATFORM / "tfserving" / "models.config"
BATCHING_CONFIG = PLATFORM / "tfserving" / "batching.config"
QDRANT_CONFIG = PLATFORM / "qdrant" / "config.yaml"
GUNICORN_CONF = PLATFORM / "gunicorn.conf.py"
DOCKERFILE = PLATFORM / "Dockerfile"
NGINX_CONF = PLATFORM / "nginx.conf"
PROMETHEUS_CONFIG = PLATFORM / "prometheus" / "prometheus.yml"
GRAFANA = PLATFORM / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "lookalike.json"
MONITORING_SERVICES = {"prometheus", "grafana"}

# The processes that run the Django code. migrate and init-volumes are one-shot jobs of the same image.
APP_SERVICES = ("web", "worker", "beat")
IMAGE_SERVICES = (*APP_SERVICES, "migrate", "init-volumes")
REQUIRED_SERVICES = {"postgres", "redis", "qdrant", "tfserving", "nginx", *IMAGE_SERVICES}

# The variables config/settings reads that the containers must get (the contract with the settings).
CORE_VARS = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "TF_SERVING_TARGET",
    "TF_SERVING_MODEL_NAME",
    "MODELS_DIR",
    "MEDIA_ROOT",
    "SECRET_KEY",
    "API_KEY_HASH_SECRET",
    "CACHE_URL",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SEARCH_THROTTLE_ANON",
    "TRUSTED_PROXIES",
    "MAX_UPLOAD_BYTES",
    "LOG_LEVEL",
    "WEB_CONCURRENCY",
}
# Never given a value in the compose file or in the example: only `${NAME:?...}` from the .env.
SECRET_VARS = ("SECRET_KEY", "POSTGRES_PASSWORD", "QDRANT_API_KEY", "API_KEY_HASH_SECRET")
# Site-specific values where the example shows a sample domain and compose a bare default.
SITE_SPECIFIC_VARS = {"ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS"}
WORKER_QUEUES = {
    "index",
    "reindex",
    "default",
    "sync",
    "text",
}  # workers/queues.py (tests/workers checks that side)
# Django's DATA_UPLOAD_MAX_MEMORY_SIZE allowance on top of MAX_UPLOAD_BYTES (config/settings/base.py).
MULTIPART_ALLOWANCE = 1024 * 1024

# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`, `${NAME:+alt}`;
# `$${...}` is an escaped dollar for the container's shell, not compose interpolation.
_SUBST = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
_ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
_COMMENTED_ASSIGN = re.compile(r"^#\s*([A-Z][A-Z0-9_]*)=")


# --- loading helpers ---------------------------------------------------------------------------


def parse_env_example(text: str) -> tuple[dict[str, str], set[str], list[str]]:
    """(active assignments, every documented name incl. commented-out ones, format problems)."""
    active: dict[str, str] = {}
    documented: set[str] = set()
    problems: list[str] = []
    previous = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        assign = _ASSIGN.match(line)
        commented = _COMMENTED_ASSIGN.match(line)
        if assign or commented:
            name = (assign or commented).group(1)
            if not previous.startswith("#") or _COMMENTED_ASSIGN.match(previous):
                problems.append(f"line {number}: {name} has no comment line directly above it")
            if name in documented:
                problems.append(f"line {number}: {name} is documented twice")
            documented.add(name)
            if assign:
                active[name] = assign.group(2)
        elif line and not line.startswith("#"):
            problems.append(f"line {number}: neither a comment nor NAME=value: {raw!r}")
        previous = line
    return active, documented, problems


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style interpolation of one string against `env` (what `docker compose` would pass)."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?"):
            if not current and not (op == "?" and current is not None):
                raise LookupError(f"required variable {name} is unset: {arg}")
            return current
        if op == ":+":
            return arg if current else ""
        return current or ""

    return _SUBST.sub(substitute, value).replace("$$", "$")


def strings(node: object):
    """Every string (keys included) in a loaded YAML value: what compose interpolates, not comments."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def substituted_names(node: object) -> set[str]:
    return {m.group(1) for text in strings(node) for m in _SUBST.finditer(text)}


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def mounts(service: dict, env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(source, target, mode) for each volume of a service, interpolated."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
            mode = "ro" if volume.get("read_only") else "rw"
        else:
            parts = interpolate(volume, env).split(":")
            source, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
        result.append((interpolate(source, env), interpolate(target, env), mode))
    return result


def container_ports(service: dict) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    for entry in service.get("expose") or []:
        ports.add(int(str(entry).split("/")[0]))
    return ports


def command_args(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg == name:
            return ""
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def host_path(source: str) -> Path | None:
    """The repository file a bind-mount source names (None for a named volume)."""
    if not source.startswith((".", "/")):
        return None
    return (ROOT / source).resolve()


def nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    assert match, f"unparseable nginx size {value!r}"
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * factor


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        "docker-compose.yml has no services"
    )
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def example() -> tuple[dict[str, str], set[str], list[str]]:
    return parse_env_example(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def env_sets(example) -> dict[str, dict[str, str]]:
    """Two ways compose will be run: with the example .env (secrets filled in) and with no .env at all
    beyond the secrets, i.e. with the compose file's own defaults."""
    secrets = {name: f"test-{name.lower()}" for name in SECRET_VARS}
    active = example[0]
    return {"example": {**active, **secrets}, "defaults": dict(secrets)}


def resolved_env(service: dict, env: dict[str, str]) -> dict[str, str]:
    return {name: interpolate(value, env) for name, value in service_env(service).items()}


# --- services and images -----------------------------------------------------------------------


def test_required_services_exist(services):
    missing = REQUIRED_SERVICES - services.keys()
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_app_services_share_one_image_build(services):
    web = services["web"]
    assert web.get("build"), "web must build the app image"
    build = web["build"]
    assert build.get("dockerfile") == "platform/Dockerfile"
    context = (ROOT / build.get("context", ".")).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / "pyproject.toml").is_file(), "the build context must be the repository root"
    for name in IMAGE_SERVICES:
        assert services[name].get("build") == build, f"{name} builds a different image than web"
        assert services[name].get("image") == web.get("image"), f"{name} is tagged differently than web"


def test_app_services_share_one_environment(services):
    envs = {name: service_env(services[name]) for name in APP_SERVICES}
    assert envs["worker"] == envs["web"], "worker and web must see the same settings"
    assert envs["beat"] == envs["web"], "beat and web must see the same settings"


def test_depends_on_targets_exist_and_conditions_are_meaningful(services):
    valid = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target!r}"
            assert target != name
            condition = (spec or {}).get("condition", "service_started")
            assert condition in valid, f"{name} -> {target}: unknown condition {condition!r}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), (
                    f"{name} waits for {target} to be healthy, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert str(services[target].get("restart", "no")) == "no", (
                    f"{target} is a one-shot job; it must not restart"
                )


def test_web_and_worker_wait_for_their_backends(services):
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]
        for backend in ("postgres", "redis", "qdrant"):
            assert depends[backend]["condition"] == "service_healthy", (
                f"{name} must wait for a healthy {backend}"
            )
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert "tfserving" in depends


# --- environment ---------------------------------------------------------------------------------


def test_env_example_is_well_formed(example):
    active, documented, problems = example
    assert not problems, "\n".join(problems)
    for name in SECRET_VARS:
        assert name in active, f"{name} must be listed in platform/.env.example"
        assert active[name] == "", f"{name} must be empty in the example (never a real or shared secret)"


def test_every_app_variable_is_documented(services, example):
    _, documented, _ = example
    for name in APP_SERVICES:
        undocumented = service_env(services[name]).keys() - documented
        assert not undocumented, (
            f"{name} gets variables not documented in platform/.env.example: {sorted(undocumented)}"
        )


def test_core_variables_reach_the_app_and_are_documented(services, example):
    _, documented, _ = example
    assert not CORE_VARS - documented, f"undocumented in .env.example: {sorted(CORE_VARS - documented)}"
    for name in APP_SERVICES:
        missing = CORE_VARS - service_env(services[name]).keys()
        assert not missing, f"{name} does not get {sorted(missing)}"


def test_every_interpolated_variable_is_set_in_the_example(compose, example):
    active, _, _ = example
    names = substituted_names(compose)
    assert names, "expected ${...} interpolation in docker-compose.yml"
    unset = names - active.keys()
    assert not unset, (
        f"docker-compose.yml reads variables platform/.env.example does not set: {sorted(unset)}"
    )


def test_compose_defaults_match_the_example(compose, example):
    active, _, _ = example
    for match in (m for text in strings(compose) for m in _SUBST.finditer(text)):
        name, op, default = match.group(1), match.group(2), match.group(3)
        if op != ":-" or name in SITE_SPECIFIC_VARS:
            continue
        assert active.get(name) == default, (
            f"{name}: docker-compose.yml falls back to {default!r}, platform/.env.example says {active.get(name)!r}"
        )


def test_secrets_only_come_from_required_substitution(services, example):
    required = {name: re.compile(rf"\$\{{{name}:\?[^}}]+\}}") for name in SECRET_VARS}
    secret_key = re.compile(r"(SECRET|PASSWORD|API_KEY|TOKEN)")
    for service_name, service in services.items():
        for key, value in service_env(service).items():
            if key in required:
                assert required[key].fullmatch(value), (
                    f"{service_name}.{key} must be exactly ${{{key}:?...}}, got {value!r}"
                )
            elif secret_key.search(key):
                assert any(p.fullmatch(value) for p in required.values()), (
                    f"{service_name}.{key} looks like a secret but is not a required substitution: {value!r}"
                )
    url = service_env(services["web"])["DATABASE_URL"]
    assert re.fullmatch(
        r"postgres://(?:[^:/@${}]+|\$\{[^}]+\}):\$\{POSTGRES_PASSWORD:\?[^}]+\}@[^/]+/.+", url
    ), f"DATABASE_URL must take its password from ${{POSTGRES_PASSWORD:?...}}: {url!r}"


def test_required_secrets_stop_compose_when_missing(services, env_sets):
    for secret in SECRET_VARS:
        env = {k: v for k, v in env_sets["example"].items() if k != secret}
        with pytest.raises(LookupError, match=secret):
            for service in services.values():
                resolved_env(service, env)


# --- models: shared volume and TF Serving --------------------------------------------------------


def _models_config():
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_server_config_pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
    return text_format.Parse(MODELS_CONFIG.read_text(), model_server_config_pb2.ModelServerConfig())


def test_models_config_serves_the_model_with_two_or_more_versions(env_sets):
    configs = list(_models_config().model_config_list.config)
    assert len(configs) == 1, "exactly one model, lookalike, is served"
    config = configs[0]
    assert config.model_platform == "tensorflow"
    for env in env_sets.values():
        assert config.name == interpolate("${TF_SERVING_MODEL_NAME:-lookalike}", env)
    policy = config.model_version_policy.WhichOneof("policy_choice")
    # A reindex serves the active version and the candidate at once; `specific` would pin one.
    assert policy == "all" or (policy == "latest" and config.model_version_policy.latest.num_versions >= 2), (
        policy
    )


def test_models_volume_is_shared_with_tfserving(services, compose, env_sets):
    base_path = _models_config().model_config_list.config[0].base_path.rstrip("/")
    tfs = services["tfserving"]
    for env in env_sets.values():
        tfs_mounts = [m for m in mounts(tfs, env) if base_path.startswith(m[1].rstrip("/") + "/")]
        assert len(tfs_mounts) == 1, f"models.config base_path {base_path} is not under a tfserving mount"
        source, target, _ = tfs_mounts[0]
        assert host_path(source) is None and source in (compose.get("volumes") or {}), (
            f"tfserving's models mount must be a named volume, got {source!r}"
        )
        model_name = interpolate("${TF_SERVING_MODEL_NAME:-lookalike}", env)
        assert base_path == f"{target.rstrip('/')}/{model_name}", (
            "base_path must be <mount>/<TF_SERVING_MODEL_NAME>"
        )
        for name in APP_SERVICES:
            models_dir = resolved_env(services[name], env)["MODELS_DIR"].rstrip("/")
            targets = {
                t.rstrip("/") for s, t, mode in mounts(services[name], env) if s == source and mode != "ro"
            }
            assert models_dir in targets, (
                f"{name}: MODELS_DIR={models_dir} is not where the {source!r} volume is mounted"
            )


def test_tfserving_command_references_existing_platform_files(services, env_sets):
    tfs = services["tfserving"]
    args = command_args(tfs)
    assert flag(args, "--enable_batching") is not None, "batching must be enabled"
    assert int(flag(args, "--model_config_file_poll_wait_seconds") or 0) > 0
    assert int(flag(args, "--file_system_poll_wait_seconds") or 0) > 0, "new versions must be picked up"
    expected = {"--model_config_file": MODELS_CONFIG, "--batching_parameters_file": BATCHING_CONFIG}
    for option, repo_file in expected.items():
        path = flag(args, option)
        assert path, f"tfserving needs {option}"
        resolved = None
        for source, target, _ in mounts(tfs, env_sets["defaults"]):
            local = host_path(source)
            if local is not None and (path == target or path.startswith(target.rstrip("/") + "/")):
                resolved = local / path[len(target) :].lstrip("/") if path != target else local
        assert resolved is not None, f"{option}={path} is not inside a bind mount of the repository"
        assert resolved.is_file(), f"{option}={path} maps to {resolved}, which does not exist"
        assert resolved == repo_file.resolve(), f"{option} maps to {resolved}, expected {repo_file}"
        assert PLATFORM.resolve() in resolved.parents


# Every flag tensorflow_model_server accepts (tensorflow_serving/model_servers/main.cc, TF Serving
# 2.21). The server refuses to start on an unknown flag, which no test here could otherwise see.
TF_SERVING_FLAGS = frozenset(
    """port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms
    rest_api_enable_cors_support enable_batching allow_version_labels_for_unavailable_models
    batching_parameters_file enable_per_model_batching_parameters model_config_file
    model_config_file_poll_wait_seconds model_name model_base_path num_load_threads num_unload_threads
    max_num_load_retries load_retry_interval_micros file_system_poll_wait_seconds
    flush_filesystem_caches tensorflow_session_parallelism tensorflow_intra_op_parallelism
    tensorflow_inter_op_parallelism use_alts_credentials tensorflow_session_config_file
    ssl_config_file platform_config_file per_process_gpu_memory_fraction saved_model_tags
    grpc_channel_arguments grpc_max_threads enable_model_warmup num_request_iterations_for_warmup
    version monitoring_config_file remove_unused_fields_from_bundle_metagraph prefer_tflite_model
    num_tflite_pools num_tflite_interpreters_per_pool enable_signature_method_name_check
    xla_cpu_compilation_enabled xla_gpu_compilation_enabled enable_profiler
    thread_pool_factory_config_file mixed_precision skip_initialize_tpu
    enable_grpc_healthcheck_service enable_serialization_as_tensor_content""".split()  # noqa: SIM905
)


def test_tfserving_flags_are_tf_serving_flags(services):
    args = [a for a in command_args(services["tfserving"]) if a.startswith("--")]
    unknown = {a.split("=", 1)[0][2:] for a in args} - TF_SERVING_FLAGS
    assert not unknown, f"tensorflow_model_server has no flag(s) {sorted(unknown)}"


def test_tfserving_serves_the_tflite_model_with_an_interpreter_per_batch_thread(services):
    from ml.tflite import TFLITE_FILE

    args = command_args(services["tfserving"])
    assert flag(args, "--prefer_tflite_model") == "true"
    # The file TF Serving looks for in a version folder (saved_model_bundle_factory.cc) is the one
    # ml.export writes.
    assert TFLITE_FILE == "model.tflite"
    # --num_tflite_pools is the number of interpreters; every batch the batcher runs at once needs one.
    assert int(flag(args, "--num_tflite_pools") or 0) == _batching_parameters().num_batch_threads.value
    # Above 1 a second, TFLite-internal batch scheduler would regroup what --enable_batching batched.
    assert flag(args, "--num_tflite_interpreters_per_pool") == "1"


def _batching_parameters():
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

    # Field names and numbers of tensorflow.serving.BatchingParameters
    # (tensorflow_serving/servables/tensorflow/session_bundle_config.proto), which the
    # tensorflow-serving-api wheel does not ship. A misspelt field fails to parse, as in the server.
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="lookalike_test_batching.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for name, number, wrapper in (
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
    ):
        message.field.add(
            name=name,
            number=number,
            label=field.LABEL_OPTIONAL,
            type=field.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
        )
    message.field.add(name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64)
    message.field.add(
        name="pad_variable_length_inputs", number=7, label=field.LABEL_OPTIONAL, type=field.TYPE_BOOL
    )
    pool.Add(proto)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
    return text_format.Parse(BATCHING_CONFIG.read_text(), cls())


def test_batching_parameters_are_valid_and_fit_the_indexing_batch(env_sets):
    params = _batching_parameters()
    assert params.HasField("max_batch_size") and params.max_batch_size.value > 0
    assert params.HasField("num_batch_threads") and params.num_batch_threads.value >= 1
    assert params.HasField("max_enqueued_batches") and params.max_enqueued_batches.value >= 1
    assert params.HasField("batch_timeout_micros") and params.batch_timeout_micros.value >= 0
    sizes = list(params.allowed_batch_sizes)
    if sizes:
        assert sizes == sorted(set(sizes)), "allowed_batch_sizes must strictly increase"
        assert sizes[-1] == params.max_batch_size.value, (
            "the last allowed batch size must equal max_batch_size"
        )
    for env in env_sets.values():
        batch = int(interpolate("${EMBED_BATCH_SIZE:-32}", env))
        assert batch <= params.max_batch_size.value, "TF Serving refuses requests larger than max_batch_size"


# --- ports and URLs ---------------------------------------------------------------------------------


def test_tf_serving_target_matches_the_grpc_port(services, env_sets):
    tfs = services["tfserving"]
    grpc_port = int(flag(command_args(tfs), "--port") or 0)
    assert grpc_port == 8500
    assert int(flag(command_args(tfs), "--rest_api_port") or 0) == 8501
    assert {8500, 8501} <= container_ports(tfs)
    for label, env in env_sets.items():
        target = resolved_env(services["web"], env)["TF_SERVING_TARGET"]
        host, _, port = target.rpartition(":")
        assert host == "tfserving" and int(port) == grpc_port, f"[{label}] TF_SERVING_TARGET={target}"


def test_qdrant_url_matches_the_rest_port(services, env_sets):
    qdrant_config = yaml.safe_load(QDRANT_CONFIG.read_text())
    http_port = qdrant_config["service"]["http_port"]
    assert http_port == 6333 and qdrant_config["service"]["grpc_port"] == 6334
    assert {6333, 6334} <= container_ports(services["qdrant"])
    for label, env in env_sets.items():
        url = urlsplit(resolved_env(services["web"], env)["QDRANT_URL"])
        assert (url.scheme, url.hostname, url.port) == ("http", "qdrant", http_port), f"[{label}] QDRANT_URL"


def test_broker_and_database_urls_name_the_compose_services(services, env_sets):
    for label, env in env_sets.items():
        app_env = resolved_env(services["web"], env)
        broker = urlsplit(app_env["CELERY_BROKER_URL"])
        assert (broker.scheme, broker.hostname, broker.port or 6379) == ("redis", "redis", 6379), label
        database = urlsplit(app_env["DATABASE_URL"])
        pg = resolved_env(services["postgres"], env)
        assert (database.scheme, database.hostname, database.port) == ("postgres", "postgres", 5432), label
        assert database.username == pg["POSTGRES_USER"] and database.password == pg["POSTGRES_PASSWORD"], (
            label
        )
        assert database.path.lstrip("/") == pg["POSTGRES_DB"], label


def test_qdrant_uses_the_mounted_config_and_volumes(services, compose, env_sets):
    qdrant = services["qdrant"]
    env = env_sets["defaults"]
    qdrant_env = resolved_env(qdrant, env)
    run_mode = qdrant_env.get("RUN_MODE", "production")
    by_target = {target: source for source, target, _ in mounts(qdrant, env)}
    config_source = by_target.get(f"/qdrant/config/{run_mode}.yaml")
    assert config_source and host_path(config_source) == QDRANT_CONFIG.resolve()
    config = yaml.safe_load(QDRANT_CONFIG.read_text())
    for key in ("storage_path", "snapshots_path"):
        path = config["storage"][key]
        assert by_target.get(path) in (compose.get("volumes") or {}), (
            f"qdrant {key}={path} is not a named volume"
        )
    assert "api_key" not in (config.get("service") or {}), "the API key belongs in the environment"
    assert service_env(qdrant)["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?")


def test_image_versions_match_the_client_libraries(services):
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    def pinned_minor(package: str) -> tuple[int, int]:
        for dependency in dependencies:
            match = re.fullmatch(
                rf"{re.escape(package)}==(\d+)\.(\d+)(\.\*|\.\d+)?", dependency.replace(" ", "")
            )
            if match:
                return int(match.group(1)), int(match.group(2))
        pytest.fail(f"{package} is not pinned to a minor version in pyproject.toml")

    def image_minor(image: str) -> tuple[int, int]:
        match = re.search(r":v?(\d+)\.(\d+)", image)
        assert match, f"image {image!r} must be pinned to a version"
        return int(match.group(1)), int(match.group(2))

    assert image_minor(services["qdrant"]["image"]) == pinned_minor("qdrant-client")
    assert image_minor(services["tfserving"]["image"]) == pinned_minor("tensorflow-serving-api")


# --- web: gunicorn, health check, proxy ----------------------------------------------------------


def _load_gunicorn_conf(monkeypatch, **env: str | None) -> dict:
    source = GUNICORN_CONF.read_text()
    code = compile(source, str(GUNICORN_CONF), "exec")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    namespace: dict = {"__file__": str(GUNICORN_CONF), "__name__": "__config__"}
    exec(code, namespace)
    return namespace


def test_gunicorn_conf_compiles_and_reads_the_environment(monkeypatch):
    conf = _load_gunicorn_conf(
        monkeypatch, WEB_CONCURRENCY="5", QDRANT_URL="http://qdrant:6333", LOG_LEVEL="WARNING"
    )
    assert conf["bind"] == "0.0.0.0:8000"
    assert conf["workers"] == 5
    assert conf["preload_app"] is False
    assert conf["accesslog"] == "-"
    assert conf["loglevel"] == "warning"
    assert conf["limit_request_line"] > 0
    assert conf["timeout"] > 0


def test_gunicorn_conf_runs_one_process_for_the_embedded_store(monkeypatch, capsys):
    conf = _load_gunicorn_conf(monkeypatch, WEB_CONCURRENCY="4", QDRANT_URL=None)
    assert conf["workers"] == 1, "without a Qdrant server the embedded store allows one process"
    assert "QDRANT_URL" in capsys.readouterr().err


def test_gunicorn_conf_names_are_gunicorn_settings(monkeypatch):
    gunicorn_config = pytest.importorskip("gunicorn.config")
    conf = _load_gunicorn_conf(monkeypatch, QDRANT_URL="http://qdrant:6333")
    known = set(gunicorn_config.Config().settings)
    names = {
        k for k, v in conf.items() if not k.startswith("_") and not callable(v) and k not in {"os", "sys"}
    }
    assert not names - known, f"not gunicorn settings (typo?): {sorted(names - known)}"


def test_web_runs_gunicorn_with_the_platform_config(services):
    dockerfile = DOCKERFILE.read_text()
    workdir = re.findall(r"^WORKDIR\s+(\S+)", dockerfile, re.M)[-1]
    for command in (command_args(services["web"]), re.search(r"^CMD\s+(\[.*\])", dockerfile, re.M).group(1)):
        text = " ".join(command) if isinstance(command, list) else command
        assert "gunicorn" in text and "config.wsgi:application" in text
        conf_path = re.search(r"(\S*gunicorn\.conf\.py)", text).group(1).strip("\"',")
        in_repo = (
            ROOT / Path(conf_path).relative_to(workdir) if conf_path.startswith("/") else ROOT / conf_path
        )
        assert in_repo.resolve() == GUNICORN_CONF.resolve(), f"{conf_path} is not platform/gunicorn.conf.py"


def test_web_healthcheck_hits_healthz_on_the_gunicorn_port(services, env_sets, monkeypatch):
    check = " ".join(services["web"]["healthcheck"]["test"])
    port = _load_gunicorn_conf(monkeypatch, QDRANT_URL="x")["bind"].rsplit(":", 1)[1]
    assert re.search(rf"https?://(127\.0\.0\.1|localhost):{port}/healthz\b", check), check
    host = re.search(r"'Host':\s*'([^']+)'", check)
    host = host.group(1) if host else "127.0.0.1"
    for label, env in env_sets.items():
        allowed = resolved_env(services["web"], env)["ALLOWED_HOSTS"].split(",")
        assert host in allowed, f"[{label}] the health check's Host {host!r} is not in ALLOWED_HOSTS"


def test_dockerfile_builds_a_compiled_non_root_image():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM\s+python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install[^\n]*\s\.(\s|$)", text), "the project is installed with `pip install .`"
    assert "compileall" in text and "collectstatic" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0", "0:0"}, "the image must run as a non-root user"
    assert text.index("compileall") < text.rindex("USER"), "compile as root, before dropping privileges"


def test_nginx_caps_uploads_at_the_django_limit(example, env_sets):
    conf = NGINX_CONF.read_text()
    push = re.search(r"location = /api/v1/catalog/sync/ \{(.*?)\}", conf, re.S)
    assert push, "the catalog push endpoint has its own location (and cap)"
    site = conf.replace(push.group(0), "")
    sizes = re.findall(r"^\s*client_max_body_size\s+(\S+);", site, re.M)
    assert len(sizes) == 1, "one upload cap for the rest of the site"
    cap = nginx_size(sizes[0])
    push_sizes = re.findall(r"client_max_body_size\s+(\S+);", push.group(1))
    assert len(push_sizes) == 1 and "proxy_pass http://lookalike_web;" in push.group(1)
    for label, env in env_sets.items():
        max_upload = int(interpolate("${MAX_UPLOAD_BYTES:-20971520}", env))
        assert cap == max_upload + MULTIPART_ALLOWANCE, (
            f"[{label}] nginx client_max_body_size {cap} != MAX_UPLOAD_BYTES {max_upload} + {MULTIPART_ALLOWANCE}"
        )
        max_push = int(interpolate("${CATALOG_SYNC_MAX_PUSH_BYTES:-268435456}", env))
        assert nginx_size(push_sizes[0]) == max_push, (
            f"[{label}] the push cap differs from CATALOG_SYNC_MAX_PUSH_BYTES"
        )


def test_nginx_proxies_to_web_and_serves_the_shared_media(services, env_sets, monkeypatch):
    conf = NGINX_CONF.read_text()
    port = _load_gunicorn_conf(monkeypatch, QDRANT_URL="x")["bind"].rsplit(":", 1)[1]
    assert re.search(rf"^\s*server\s+web:{port}\b", conf, re.M), (
        "nginx upstream must be web on gunicorn's port"
    )
    nginx = services["nginx"]
    env = env_sets["defaults"]
    assert any(host_path(s) == NGINX_CONF.resolve() for s, _, _ in mounts(nginx, env)), (
        "nginx.conf is not mounted"
    )
    alias = re.search(r"location\s+/media/\s*\{[^}]*?alias\s+(\S+);", conf, re.S).group(1).rstrip("/")
    nginx_media = {s for s, t, _ in mounts(nginx, env) if t.rstrip("/") == alias}
    media_root = resolved_env(services["web"], env)["MEDIA_ROOT"].rstrip("/")
    web_media = {s for s, t, _ in mounts(services["web"], env) if t.rstrip("/") == media_root}
    assert nginx_media and nginx_media == web_media, "nginx must serve the volume web writes uploads to"


# --- workers ---------------------------------------------------------------------------------------


def test_worker_consumes_every_queue(services):
    args = command_args(services["worker"])
    assert args[:1] == ["celery"] and "worker" in args
    assert (flag(args, "--app") or flag(args, "-A") or "").startswith("config")
    queues = set((flag(args, "--queues") or flag(args, "-Q") or "").split(","))
    assert queues == WORKER_QUEUES, f"worker queues {sorted(queues)} != {sorted(WORKER_QUEUES)}"
    assert int(flag(args, "--max-tasks-per-child") or 0) > 0


def test_beat_runs_once_and_can_write_its_schedule(services):
    args = command_args(services["beat"])
    assert args[:1] == ["celery"] and "beat" in args
    schedule = flag(args, "--schedule") or flag(args, "-s")
    assert schedule and schedule.startswith("/tmp/"), (
        "the non-root image can only write the schedule under /tmp"
    )
    deploy = services["beat"].get("deploy") or {}
    assert deploy.get("replicas", 1) == 1, "two beats would enqueue every periodic task twice"


# --- monitoring profile: Prometheus, Grafana, and who may scrape ---------------------------------------


_METRIC_NAME = re.compile(r"\blookalike_[a-z0-9_]+\b")


def dashboard_metric_names(path: Path = DASHBOARD) -> dict[str, set[str]]:
    """{panel title: the metric names its queries read}; tests/config/test_metrics.py checks each one
    against a real scrape of /metrics."""
    dashboard = json.loads(path.read_text())
    return {
        panel["title"]: {name for target in panel["targets"] for name in _METRIC_NAME.findall(target["expr"])}
        for panel in dashboard["panels"]
    }


def _service_networks(service: dict) -> set[str]:
    networks = service.get("networks") or ["default"]
    return set(networks)


def _bind_mount(service: dict, target: str, env: dict[str, str]) -> Path:
    for source, mount_target, _ in mounts(service, env):
        if mount_target.rstrip("/") == target.rstrip("/"):
            local = host_path(source)
            assert local is not None, f"{target} is not a bind mount of the repository"
            return local
    raise AssertionError(f"nothing is mounted at {target}")


def test_monitoring_services_run_only_with_their_profile(services):
    assert services.keys() >= MONITORING_SERVICES
    for name, service in services.items():
        profiles = service.get("profiles")
        if name in MONITORING_SERVICES:
            assert profiles == ["monitoring"], f"{name} must run only with --profile monitoring"
        else:
            assert not profiles, f"{name} is part of the stack and must not need a profile"


def test_monitoring_mounts_exist_in_platform(services, env_sets):
    env = env_sets["defaults"]
    for name in MONITORING_SERVICES:
        for source, _, mode in mounts(services[name], env):
            local = host_path(source)
            if local is None:
                continue
            assert local.exists(), f"{name} mounts {source}, which does not exist"
            assert PLATFORM.resolve() in local.parents, f"{name} mounts {source} from outside platform/"
            assert mode == "ro", f"{name} must mount {source} read-only"
    args = command_args(services["prometheus"])
    config_file = flag(args, "--config.file")
    assert _bind_mount(services["prometheus"], config_file, env) == PROMETHEUS_CONFIG.resolve()


def test_prometheus_scrapes_web_and_every_worker(services, env_sets, monkeypatch):
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                jobs[host] = (sd.get("type", "SRV"), sd["port"])
    web_port = int(_load_gunicorn_conf(monkeypatch, QDRANT_URL="x")["bind"].rsplit(":", 1)[1])
    # A records: every replica of a scaled service is a target.
    assert jobs["web"] == ("A", web_port)
    for label, env in env_sets.items():
        worker_port = int(resolved_env(services["worker"], env)["WORKER_METRICS_PORT"])
        assert jobs["worker"] == ("A", worker_port), f"[{label}] the worker's metrics port"
        expose = {int(interpolate(str(p), env)) for p in services["worker"].get("expose", [])}
        assert worker_port in expose


def test_only_the_monitoring_network_may_scrape(services, compose, env_sets):
    assert _service_networks(services["prometheus"]) == {"monitoring"}
    assert _service_networks(services["grafana"]) == {"monitoring"}
    for name in ("web", "worker"):
        assert _service_networks(services[name]) == {"default", "monitoring"}, name
    assert "monitoring" not in _service_networks(services["nginx"]), "nginx's address would be allowed"
    subnet_setting = compose["networks"]["monitoring"]["ipam"]["config"][0]["subnet"]
    for label, env in env_sets.items():
        subnet = ipaddress.ip_network(interpolate(subnet_setting, env))
        allowed = [
            ipaddress.ip_network(c)
            for c in resolved_env(services["web"], env)["METRICS_ALLOWED_CIDRS"].split(",")
        ]
        assert any(subnet.subnet_of(n) for n in allowed if n.version == subnet.version), (
            f"[{label}] MONITORING_SUBNET {subnet} is not in METRICS_ALLOWED_CIDRS: Prometheus would get 403"
        )
        assert any(ipaddress.ip_address("127.0.0.1") in n for n in allowed), label


def test_metrics_multiprocess_folder_is_a_tmpfs_of_each_app_container(services, env_sets):
    for name in APP_SERVICES:
        folder = resolved_env(services[name], env_sets["defaults"])["PROMETHEUS_MULTIPROC_DIR"]
        assert folder in (services[name].get("tmpfs") or []), f"{name}: {folder} must be a fresh tmpfs"


def test_nginx_refuses_metrics_on_the_public_port():
    conf = NGINX_CONF.read_text()
    block = re.search(r"location\s+\^~\s+/metrics\s*\{([^}]*)\}", conf)
    assert block, "nginx needs `location ^~ /metrics { deny all; }` (prefix match, before any regex)"
    assert re.search(r"^\s*deny\s+all;", block.group(1), re.M)
    assert "proxy_pass" not in block.group(1)


def test_grafana_provisions_the_datasource_and_the_dashboard(services, env_sets):
    env = env_sets["defaults"]
    grafana = services["grafana"]
    provisioning = _bind_mount(grafana, "/etc/grafana/provisioning", env)
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and url.port in container_ports(services["prometheus"])
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "lookalike.yml").read_text())["providers"]
    dashboards = _bind_mount(grafana, provider["options"]["path"], env)
    assert dashboards == DASHBOARD.parent.resolve()
    assert service_env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == (
        provider["options"]["path"].rstrip("/") + "/" + DASHBOARD.name
    )

    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert dashboard["uid"] and panels
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"]
    names = dashboard_metric_names()
    assert all(names.values()), (
        f"panels reading no lookalike metric: {[t for t, n in names.items() if not n]}"
    )
    wanted = {
        "lookalike_http_requests_total",
        "lookalike_http_request_duration_seconds_bucket",
        "lookalike_search_stage_seconds_bucket",
        "lookalike_images_embedded_total",
        "lookalike_index_lag_seconds",
        "lookalike_index_images",
        "lookalike_active_model_version",
        "lookalike_celery_queue_length",
    }
    assert wanted <= set().union(*names.values()), sorted(wanted - set().union(*names.values()))
