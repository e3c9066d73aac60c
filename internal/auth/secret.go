package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Prefixes of the two kinds of bearer secret. They tell the kinds apart without a lookup, and make a
// leaked secret easy to recognise in a scan.
const (
	sessionPrefix = "jcs_"
	tokenPrefix   = "jct_"
)

// newSecret returns a random 256-bit secret with prefix, and the hash that is stored instead of it.
func newSecret(prefix string) (secret, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, hashSecret(secret)
}

// hashSecret is the stored form of a secret. A fast hash is right here: the secrets are random
// 256-bit values, so there is nothing to guess that a slow hash would protect.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// bearer extracts the secret from an Authorization header value ("Bearer <secret>").
func bearer(header string) (string, bool) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}
