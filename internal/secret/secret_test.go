package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key, err := LoadKey("", filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewBox(key)
	scope := Scope{"ws_a", "dst_a", "apiKey"}
	c, err := b.Seal("hunter2", scope)
	if err != nil || strings.Contains(c, "hunter2") || !strings.HasPrefix(c, "v1:") {
		t.Fatalf("sealed %q %v", c, err)
	}
	if p, err := b.Open(c, scope); err != nil || p != "hunter2" {
		t.Errorf("open: %q %v", p, err)
	}
	c2, _ := b.Seal("hunter2", scope)
	if c2 == c {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	for name, other := range map[string]Scope{
		"OtherWorkspace":   {"ws_b", "dst_a", "apiKey"},
		"OtherDestination": {"ws_a", "dst_b", "apiKey"},
		"OtherField":       {"ws_a", "dst_a", "secret"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := b.Open(c, other); err != ErrCorrupt {
				t.Errorf("ciphertext opened under %+v: %v", other, err)
			}
		})
	}
	t.Run("OtherKey", func(t *testing.T) {
		k2, _ := LoadKey("", filepath.Join(t.TempDir(), "k2"))
		b2, _ := NewBox(k2)
		if _, err := b2.Open(c, scope); err != ErrCorrupt {
			t.Error("opened under another key")
		}
	})
	t.Run("Tampered", func(t *testing.T) {
		if _, err := b.Open(c[:len(c)-4]+"AAA=", scope); err != ErrCorrupt {
			t.Error("tampered ciphertext opened")
		}
		if _, err := b.Open("garbage", scope); err != ErrCorrupt {
			t.Error("garbage opened")
		}
	})
}

func TestLoadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key")
	k1, err := LoadKey("", path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode())
	}
	k2, _ := LoadKey("", path)
	if string(k1) != string(k2) {
		t.Error("the key file was not reused")
	}
	if _, err := LoadKey("bm90IDMyIGJ5dGVz", ""); err == nil {
		t.Error("a short key was accepted")
	}
	if _, err := LoadKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", ""); err != nil {
		t.Errorf("a good key was refused: %v", err)
	}
}
