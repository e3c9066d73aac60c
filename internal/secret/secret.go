// Package secret encrypts the secret settings of destinations at rest with AES-256-GCM. Each value
// is bound to where it belongs (workspace, destination, setting) as additional authenticated data,
// so a ciphertext copied to another workspace, destination or field does not decrypt.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Box encrypts and decrypts with one key.
type Box struct{ aead cipher.AEAD }

// version prefixes every ciphertext, so that the scheme can change later.
const version = "v1:"

// NewBox returns a box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the encryption key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// LoadKey returns the key from encoded (base64 of 32 bytes) when given, else from the file at
// path, which is created with a new random key (mode 0600) when it does not exist.
func LoadKey(encoded, path string) ([]byte, error) {
	if encoded != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
		if err != nil || len(key) != 32 {
			return nil, errors.New("ENCRYPTION_KEY must be the base64 encoding of 32 bytes (openssl rand -base64 32)")
		}
		return key, nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		key, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) != 32 {
			return nil, fmt.Errorf("%s does not hold a base64 32-byte key", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	// O_EXCL: two servers starting on one data directory must not each write their own key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadKey("", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return nil, err
	}
	return key, f.Sync()
}

// Scope names where a value belongs.
type Scope struct{ WorkspaceID, OwnerID, Field string }

func (s Scope) aad() []byte { return []byte(s.WorkspaceID + "\x00" + s.OwnerID + "\x00" + s.Field) }

// Seal encrypts plaintext for scope.
func (b *Box) Seal(plaintext string, scope Scope) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := b.aead.Seal(nonce, nonce, []byte(plaintext), scope.aad())
	return version + base64.StdEncoding.EncodeToString(out), nil
}

// ErrCorrupt is returned for a ciphertext that does not decrypt under this key and scope.
var ErrCorrupt = errors.New("secret: the value does not decrypt (wrong key, or it belongs elsewhere)")

// Open decrypts a value sealed for scope.
func (b *Box) Open(ciphertext string, scope Scope) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ciphertext, version))
	if err != nil || !strings.HasPrefix(ciphertext, version) || len(raw) < b.aead.NonceSize() {
		return "", ErrCorrupt
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], scope.aad())
	if err != nil {
		return "", ErrCorrupt
	}
	return string(plain), nil
}
