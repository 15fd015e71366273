import json

from tests.processes import clean_env, manage

PRODUCTION_ENV = {
    "OMS_ENV": "production",
    "SECRET_KEY": "k3y-for-the-deploy-check-" + "x7Qm9Zp2Lw" * 4,
    "ALLOWED_HOSTS": "oms.example.com",
    "OMS_IDENTITY_KEY": "id3ntity-key-of-its-own-" + "Rt5Kp8Vn2Q" * 4,
}


def test_production_settings_pass_check_deploy_with_no_warnings(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env=clean_env(OMS_VAR_DIR=str(tmp_path), **PRODUCTION_ENV),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_refuses_production_without_an_identity_key_of_its_own(tmp_path):
    for identity_key in ("", PRODUCTION_ENV["SECRET_KEY"]):
        env = clean_env(OMS_VAR_DIR=str(tmp_path), **(PRODUCTION_ENV | {"OMS_IDENTITY_KEY": identity_key}))
        result = manage("check", "--deploy", env=env)
        assert result.returncode != 0
        assert "oms.E001" in result.stderr + result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = clean_env(OMS_VAR_DIR=str(tmp_path), OMS_ENV="production", ALLOWED_HOSTS="oms.example.com")

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_development_default_warns_loudly_about_its_secret_key(tmp_path):
    result = manage("check", env=clean_env(OMS_VAR_DIR=str(tmp_path)))

    assert result.returncode == 0
    assert "development SECRET_KEY" in result.stderr


def test_production_logs_one_json_object_per_line(tmp_path):
    result = manage(
        "shell", "-c", "import logging; logging.getLogger('oms.probe').warning('order %s stuck', 'TB1')",
        env=clean_env(OMS_VAR_DIR=str(tmp_path), **PRODUCTION_ENV),
    )

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    probe = [r for r in records if r["logger"] == "oms.probe"]
    assert probe == [
        {"time": probe[0]["time"], "level": "WARNING", "logger": "oms.probe", "message": "order TB1 stuck"}
    ]
