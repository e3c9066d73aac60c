package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func load(args []string, env map[string]string) (Config, error) {
	return Load(args, func(k string) string { return env[k] }, io.Discard)
}

func TestDefaults(t *testing.T) {
	c, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.DatabaseURL != "data/junction.db" || c.LogLevel != slog.LevelInfo || !c.Introspection {
		t.Errorf("defaults: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	t.Run("EnvOverDefault", func(t *testing.T) {
		c, err := load(nil, map[string]string{"PORT": "9000", "DATABASE_URL": "/tmp/x.db", "LOG_LEVEL": "debug", "OPERATION_TIMEOUT": "5s"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Addr != ":9000" || c.DatabaseURL != "/tmp/x.db" || c.LogLevel != slog.LevelDebug || c.Limits.OperationTimeout != 5*time.Second {
			t.Errorf("%+v", c)
		}
	})
	t.Run("AddrOverPort", func(t *testing.T) {
		c, err := load(nil, map[string]string{"PORT": "9000", "ADDR": "127.0.0.1:9001"})
		if err != nil || c.Addr != "127.0.0.1:9001" {
			t.Errorf("addr = %q, %v", c.Addr, err)
		}
	})
	t.Run("FlagOverEnv", func(t *testing.T) {
		c, err := load([]string{"-addr", "127.0.0.1:7000", "-max-depth", "4"}, map[string]string{"ADDR": "127.0.0.1:9001", "MAX_DEPTH": "9"})
		if err != nil || c.Addr != "127.0.0.1:7000" || c.Limits.Depth != 4 {
			t.Errorf("%+v %v", c, err)
		}
	})
	t.Run("Mail", func(t *testing.T) {
		env := map[string]string{"SMTP_URL": "smtp://u:p@mail.example.com:587", "SMTP_FROM": "Env <env@example.com>", "PUBLIC_URL": "https://env.example.com/"}
		c, err := load(nil, env)
		if err != nil || c.SMTPURL != env["SMTP_URL"] || c.SMTPFrom != env["SMTP_FROM"] || c.PublicURL != "https://env.example.com" {
			t.Errorf("from the environment: %+v %v", c, err)
		}
		c, err = load([]string{"-smtp-url", "smtps://mail.example.com", "-smtp-from", "flag@example.com", "-public-url", "https://flag.example.com"}, env)
		if err != nil || c.SMTPURL != "smtps://mail.example.com" || c.SMTPFrom != "flag@example.com" || c.PublicURL != "https://flag.example.com" {
			t.Errorf("flags over the environment: %+v %v", c, err)
		}
	})
	t.Run("PublicURLDefault", func(t *testing.T) {
		for addr, want := range map[string]string{":8080": "http://localhost:8080", "127.0.0.1:9000": "http://127.0.0.1:9000", "[::]:80": "http://localhost:80"} {
			if c, err := load([]string{"-addr", addr}, nil); err != nil || c.PublicURL != want {
				t.Errorf("addr %s: public URL %q, %v; want %q", addr, c.PublicURL, err, want)
			}
		}
	})
	t.Run("Postgres", func(t *testing.T) {
		c, err := load([]string{"-database-read-conns", "3"}, map[string]string{"DATABASE_URL": "postgres://db.example/junction"})
		if err != nil || c.DatabaseURL != "postgres://db.example/junction" || c.DatabaseReadConns != 3 {
			t.Errorf("%q, %d read connections, %v", c.DatabaseURL, c.DatabaseReadConns, err)
		}
	})
	t.Run("EgressAllow", func(t *testing.T) {
		c, err := load(nil, nil)
		if err != nil || len(c.EgressAllow) != 0 {
			t.Errorf("default allow list %v (%v), want empty", c.EgressAllow, err)
		}
		c, err = load(nil, map[string]string{"EGRESS_ALLOW": "127.0.0.0/8, ::1/128"})
		if err != nil || fmt.Sprint(c.EgressAllow) != "[127.0.0.0/8 ::1/128]" {
			t.Errorf("from the environment: %v %v", c.EgressAllow, err)
		}
		c, err = load([]string{"-egress-allow", "10.0.0.0/8"}, map[string]string{"EGRESS_ALLOW": "127.0.0.0/8"})
		if err != nil || fmt.Sprint(c.EgressAllow) != "[10.0.0.0/8]" {
			t.Errorf("the flag over the environment: %v %v", c.EgressAllow, err)
		}
	})
	t.Run("Origins", func(t *testing.T) {
		c, _ := load(nil, map[string]string{"ALLOWED_ORIGINS": "https://a.example/, https://b.example"})
		if strings.Join(c.Origins, " ") != "https://a.example https://b.example" {
			t.Errorf("origins %q", c.Origins)
		}
	})
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"BadEnvNumber", nil, map[string]string{"MAX_DEPTH": "deep"}, "MAX_DEPTH"},
		{"BadEnvDuration", nil, map[string]string{"OPERATION_TIMEOUT": "5"}, "OPERATION_TIMEOUT"},
		{"BadEnvBool", nil, map[string]string{"INTROSPECTION": "maybe"}, "INTROSPECTION"},
		{"BadLevel", []string{"-log-level", "loud"}, nil, "log-level"},
		{"BadFormat", []string{"-log-format", "xml"}, nil, "log-format"},
		{"BadAddr", []string{"-addr", "localhost"}, nil, "addr"},
		{"BadPort", nil, map[string]string{"PORT": "99999"}, "port"},
		{"ZeroLimit", []string{"-max-aliases", "0"}, nil, "max-aliases"},
		{"EmptyDatabase", []string{"-database-url", " "}, nil, "database-url"},
		{"NoReadConns", nil, map[string]string{"DATABASE_READ_CONNS": "0"}, "database-read-conns"},
		{"BadEgressAllow", nil, map[string]string{"EGRESS_ALLOW": "localhost"}, "egress-allow"},
		{"StrayArgument", []string{"serve"}, nil, "unexpected argument"},
		{"SMTPScheme", nil, map[string]string{"SMTP_URL": "http://mail.example.com", "SMTP_FROM": "a@example.com"}, "smtp-url"},
		{"SMTPWithoutFrom", nil, map[string]string{"SMTP_URL": "smtp://mail.example.com"}, "smtp-from"},
		{"FromWithoutSMTP", []string{"-smtp-from", "a@example.com"}, nil, "smtp-from"},
		{"PublicURLRelative", nil, map[string]string{"PUBLIC_URL": "junction.example.com"}, "public-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(tc.args, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not name %q", err, tc.want)
			}
		})
	}
}
