import pytest

from authsvc.config import ConfigError, load_settings


def test_defaults_follow_rfc9106_second_recommendation():
    s = load_settings({}, environ={})
    assert (s.argon2_time_cost, s.argon2_memory_cost, s.argon2_parallelism) == (3, 65536, 4)
    assert s.session_idle_timeout <= 3600 and s.session_absolute_timeout <= 86400


def test_precedence_defaults_file_env_overrides(tmp_path):
    f = tmp_path / "authsvc.toml"
    f.write_text('[authsvc]\nargon2_time_cost = 5\nservice_name = "from-file"\nsession_idle_timeout = 600\n')
    env = {"AUTHSVC_CONFIG": str(f), "AUTHSVC_SERVICE_NAME": "from-env"}
    s = load_settings({"session_idle_timeout": 300}, environ=env)
    assert s.argon2_time_cost == 5  # file
    assert s.service_name == "from-env"  # env beats file
    assert s.session_idle_timeout == 300  # explicit override beats env


@pytest.mark.parametrize("env, setting", [
    ({"AUTHSVC_ARGON2_TIME_COST": "abc"}, "AUTHSVC_ARGON2_TIME_COST"),
    ({"AUTHSVC_ARGON2_TIME_COST": "0"}, "AUTHSVC_ARGON2_TIME_COST"),
    ({"AUTHSVC_RESET_TOKEN_TTL": "7200"}, "AUTHSVC_RESET_TOKEN_TTL"),
    ({"AUTHSVC_TRUSTED_PROXIES": "10.0.0.0/8,not-a-net"}, "AUTHSVC_TRUSTED_PROXIES"),
    ({"AUTHSVC_SESSION_IDLE_TIMEOUT": "100", "AUTHSVC_SESSION_ABSOLUTE_TIMEOUT": "50"},
     "AUTHSVC_SESSION_ABSOLUTE_TIMEOUT"),
    ({"AUTHSVC_DATABASE_URL": "mysql://x"}, "AUTHSVC_DATABASE_URL"),
    ({"AUTHSVC_SMTP_STARTTLS": "perhaps"}, "AUTHSVC_SMTP_STARTTLS"),
    ({"AUTHSVC_PASSWORD_MAX_LENGTH": "32"}, "AUTHSVC_PASSWORD_MAX_LENGTH"),
])
def test_bad_values_are_refused_naming_the_setting(env, setting):
    with pytest.raises(ConfigError) as exc:
        load_settings({}, environ=env)
    assert exc.value.setting == setting
    assert str(exc.value).startswith(setting)


def test_unknown_key_in_file_is_refused(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("argon_time = 3\n")
    with pytest.raises(ConfigError, match="AUTHSVC_ARGON_TIME: unknown setting"):
        load_settings({}, environ={"AUTHSVC_CONFIG": str(f)})


def test_broken_toml_is_refused(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="AUTHSVC_CONFIG"):
        load_settings({}, environ={"AUTHSVC_CONFIG": str(f)})


def test_list_from_env():
    s = load_settings({}, environ={"AUTHSVC_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1"})
    assert s.trusted_proxies == ("10.0.0.0/8", "192.168.1.1")
