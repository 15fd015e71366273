"""Settings for the order management center, read from the environment.

One module, two shapes: the embedded default (SQLite under var/, kombu's file-system broker,
file cache) that needs no server, and the production shape (OMS_ENV=production, PostgreSQL via
DATABASE_URL, Redis via REDIS_URL) that passes `manage.py check --deploy`.
"""

import os
import re
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("OMS_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


OMS_ENV = os.environ.get("OMS_ENV", "development")
PRODUCTION = OMS_ENV == "production"

DEV_SECRET_KEY = "INSECURE-DEV-KEY-never-use-in-production-set-SECRET_KEY"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when OMS_ENV=production")
    SECRET_KEY = DEV_SECRET_KEY
    if "pytest" not in sys.modules:
        print(
            "WARNING: using the built-in development SECRET_KEY; set SECRET_KEY before "
            "exposing this instance.",
            file=sys.stderr,
        )

DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_fsm",
    "import_export",
    "oms",
    "inventory",
    "orders",
    "channels",
    "reconciliation",
    "alerts",
    "axes",
]

# Login throttling (django-axes) on the admin login and the API token endpoint: after
# OMS_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# locked out for OMS_LOGIN_COOLOFF_MINUTES (the right password included).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("OMS_LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = int(os.environ.get("OMS_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = float(os.environ.get("OMS_LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "oms.middleware.refuse_nul_bytes",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "oms.urls"
WSGI_APPLICATION = "oms.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "oms.sqlite3"
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{SQLITE_PATH}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE
    # takes the write lock at BEGIN (no upgrade deadlocks) and the timeout waits instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env_bool("OMS_DB_PREPARED_STATEMENTS", True):
    # Server-side binding lets psycopg prepare repeated statements (less parsing and planning
    # in PostgreSQL). Turn off behind a transaction-pooling PgBouncer, which cannot keep them.
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker ----------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("OMS_CACHE_PREFIX", "oms"),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_FOLDER = VAR_DIR / "celery" / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for folder in ("broker", "processed", "control"):
        (VAR_DIR / "celery" / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # One folder for in and out: producers and consumers are different processes.
        "data_folder_in": str(CELERY_BROKER_FOLDER),
        "data_folder_out": str(CELERY_BROKER_FOLDER),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
else:
    # Redis redelivers an unacknowledged message after this: longer than the longest task (a
    # statement import, OMS_IMPORT_TIME_LIMIT) so a live task is never run twice, short enough
    # that a killed worker's message comes back within the hour. Rows that must not wait that
    # long (runs, imports) are retried by reconciliation's sweep within minutes; retries with a
    # countdown re-publish, so the timeout need not cover them.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 2}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "300"))
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "360"))
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "oms.beat:ResilientDatabaseScheduler"
# Statement imports run in a worker with this hard limit (seconds); files up to
# OMS_STATEMENT_INLINE_BYTES are imported in the API request itself (201), larger ones answer 202.
OMS_IMPORT_TIME_LIMIT = int(os.environ.get("OMS_IMPORT_TIME_LIMIT", "1800"))
OMS_STATEMENT_INLINE_BYTES = int(os.environ.get("OMS_STATEMENT_INLINE_BYTES", str(2 << 20)))
# A queued run or import not taken by a worker this long is sent to the broker again.
OMS_QUEUED_PICKUP_SECONDS = int(os.environ.get("OMS_QUEUED_PICKUP_SECONDS", "120"))
# By this local time the previous day must have a reconciliation run, else the sweep queues it.
OMS_NIGHTLY_CATCHUP_AFTER = os.environ.get("OMS_NIGHTLY_CATCHUP_AFTER", "10:00")
CELERY_TIMEZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# --- API ------------------------------------------------------------------------------------


def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate ("20/min") from the environment; "" / "off" / "0" turn it off.
    Unset, the default applies only while OMS_LOGIN_THROTTLE is on: the test run turns every
    throttle off that way, except in the tests about them (which set their own rates)."""
    value = os.environ.get(name)
    if value is None:
        return default if AXES_ENABLED else None
    value = value.strip()
    if value.lower() in {"", "off", "0", "none"}:
        return None
    if not re.fullmatch(r"[1-9][0-9]*/[smhd][a-z]*", value):
        raise ImproperlyConfigured(f"{name}={value!r}: a rate like 20/min (per s, min, hour or day) or off")
    return value


# Throttles (oms/throttling.py), per client address: POST /api/v1/auth/token/ (all attempts), and
# the refused requests of the signed public callbacks (channel webhook, payment notifies, carrier
# push); past that rate a refused callback answers 429 and is not recorded. Validly signed ones
# are never throttled.
OMS_AUTH_TOKEN_RATE = env_rate("OMS_AUTH_TOKEN_RATE", "20/min")
OMS_CALLBACK_REJECTION_RATE = env_rate("OMS_CALLBACK_REJECTION_RATE", "30/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Nothing is open by default: every view names the permission it needs on top of this.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "oms.api.Pagination",
    "PAGE_SIZE": 50,
    # drf-spectacular's, plus the error responses of CONTRACTS.md on every operation (oms/schema.py).
    "DEFAULT_SCHEMA_CLASS": "oms.schema.ErrorResponsesAutoSchema",
    "EXCEPTION_HANDLER": "oms.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth_token": OMS_AUTH_TOKEN_RATE,
        "callback_rejection": OMS_CALLBACK_REJECTION_RATE,
    },
    # The client address of throttling: REMOTE_ADDR (0), or behind N trusted proxies the
    # address N hops from the right of X-Forwarded-For. Never the header as the client sent it.
    "NUM_PROXIES": int(os.environ.get("OMS_NUM_PROXIES", "0")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Order management center API",
    "DESCRIPTION": "Orders, warehouse scanner events, inventory, channels, payments and "
    "reconciliation. Authenticate with `Authorization: Token <token>` from "
    "`POST /api/v1/auth/token/`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SchemaDriftKindEnum": "channels.models.SchemaDrift.Kind",
        "ChannelKindEnum": "channels.models.ChannelKind",
        "VoucherStatusEnum": "reconciliation.models.VoucherStatus",
        "DiscrepancyStatusEnum": "reconciliation.models.DiscrepancyStatus",
        "AlertStatusEnum": "alerts.models.AlertStatus",
        # The `error` of the error bodies (oms/schema.py).
        "ValidationErrorKindEnum": ["validation"],
        "ConflictErrorKindEnum": ["conflict"],
    },
}
# The API contract is public (CONTRACTS.md); an operator who wants it private turns this off.
OMS_PUBLIC_API_DOCS = env_bool("OMS_PUBLIC_API_DOCS", True)

# Keyed hash for customer identities (phones are never stored in the clear).
# The key of the buyer-identity hashes. Its own key in production (manage.py check --deploy
# refuses SECRET_KEY or none): rotating SECRET_KEY must not split every buyer identity.
OMS_IDENTITY_KEY = os.environ.get("OMS_IDENTITY_KEY", "") or ("" if PRODUCTION else SECRET_KEY)
# During a rotation: the key being replaced. Identities under it are re-keyed when their buyer is
# seen again or by `manage.py rehash_identities`; remove it once that reports nothing left.
OMS_IDENTITY_PREVIOUS_KEY = os.environ.get("OMS_IDENTITY_PREVIOUS_KEY", "")

# Where people open the app; links in alert notifications start with it.
OMS_PUBLIC_URL = os.environ.get("OMS_PUBLIC_URL", "http://127.0.0.1:8000")
# Order numbers claimed this many at a time per process (PostgreSQL): no lock shared by
# concurrent intake, at the price of numbers interleaved between processes (orders/numbers.py).
OMS_ORDER_NUMBER_BLOCK = int(os.environ.get("OMS_ORDER_NUMBER_BLOCK", "1"))

# --- Payment callbacks (CONTRACTS.md) -------------------------------------------------------
# Empty means "not configured": that provider's callbacks are refused, never accepted unsigned.
OMS_PAYMENT_GENERIC_SECRET = os.environ.get("OMS_PAYMENT_GENERIC_SECRET", "")
OMS_WECHATPAY_API_V3_KEY = os.environ.get("OMS_WECHATPAY_API_V3_KEY", "")
# Wechatpay-Serial → platform certificate or WeChat Pay public key, one <serial>.pem per file.
OMS_WECHATPAY_PLATFORM_KEYS = {
    pem.stem: pem.read_bytes()
    for pem in sorted(Path(os.environ.get("OMS_WECHATPAY_KEYS_DIR", VAR_DIR / "wechatpay")).glob("*.pem"))
}
OMS_WECHATPAY_MAX_SKEW_SECONDS = int(os.environ.get("OMS_WECHATPAY_MAX_SKEW_SECONDS", "300"))
OMS_ALIPAY_PUBLIC_KEY = os.environ.get("OMS_ALIPAY_PUBLIC_KEY", "")
OMS_ALIPAY_APP_ID = os.environ.get("OMS_ALIPAY_APP_ID", "")

# --- Statement uploads (reconciliation/statements/limits.py) ---------------------------------
# Refused before the work they bound: bytes uploaded; bytes every archive layer (gzip, zip
# member, the parts of an .xlsx) unpacks to, in all; cells of an .xlsx workbook.
OMS_STATEMENT_MAX_BYTES = int(os.environ.get("OMS_STATEMENT_MAX_BYTES", str(50 << 20)))
OMS_STATEMENT_MAX_UNPACKED_BYTES = int(os.environ.get("OMS_STATEMENT_MAX_UNPACKED_BYTES", str(200 << 20)))
OMS_STATEMENT_MAX_CELLS = int(os.environ.get("OMS_STATEMENT_MAX_CELLS", "20000000"))

# --- Carrier tracking (channels/tracking.py) --------------------------------------------------
# "sandbox" (scripted routes, for the demo; refused for pushes in production) or "kuaidi100".
OMS_CARRIER_ADAPTER = os.environ.get("OMS_CARRIER_ADAPTER", "sandbox")
OMS_KUAIDI100_CUSTOMER = os.environ.get("OMS_KUAIDI100_CUSTOMER", "")
OMS_KUAIDI100_KEY = os.environ.get("OMS_KUAIDI100_KEY", "")
OMS_KUAIDI100_SALT = os.environ.get("OMS_KUAIDI100_SALT", "")  # signs pushes; required
OMS_KUAIDI100_BASE_URL = os.environ.get("OMS_KUAIDI100_BASE_URL", "https://poll.kuaidi100.com")
OMS_TRACKING_CALLBACK_URL = os.environ.get(
    "OMS_TRACKING_CALLBACK_URL", OMS_PUBLIC_URL.rstrip("/") + "/api/v1/carriers/kuaidi100/push/"
)
OMS_TRACKING_POLL_HOURS = float(os.environ.get("OMS_TRACKING_POLL_HOURS", "6"))
# Channel pulls: the window in slices (the cursor moves after each), and a pull stops after the
# slice that passes the budget, well inside CELERY_TASK_SOFT_TIME_LIMIT, so a backlog drains.
OMS_PULL_SLICE_SECONDS = int(os.environ.get("OMS_PULL_SLICE_SECONDS", "3600"))
OMS_PULL_BUDGET_SECONDS = float(os.environ.get("OMS_PULL_BUDGET_SECONDS", "120"))
OMS_TRACKING_STALE_HOURS = float(os.environ.get("OMS_TRACKING_STALE_HOURS", "48"))

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOG_FORMAT = os.environ.get("OMS_LOG_FORMAT", "json" if PRODUCTION else "console")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "console": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}

# --- Production hardening (manage.py check --deploy is clean with OMS_ENV=production) --------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # /healthz is probed over plain HTTP by load balancers and compose.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
