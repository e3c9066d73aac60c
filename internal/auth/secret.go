package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Prefixes of the kinds of secret: the two bearer secrets, and the secrets of links (invitations,
// address verification). They tell the kinds apart without a lookup, and make a leaked secret easy
// to recognise in a scan.
const (
	sessionPrefix      = "jcs_"
	tokenPrefix        = "jct_"
	verificationPrefix = "jcv_"
	// InvitationSecretPrefix starts the secret of an invitation (internal/workspace).
	InvitationSecretPrefix = "jci_"
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

// NewSecret returns a random 256-bit secret with prefix, and the hash that is stored instead of it,
// for the secrets other packages keep (invitations).
func NewSecret(prefix string) (secret, hash string) { return newSecret(prefix) }

// HashSecret is the stored form of a secret made by NewSecret.
func HashSecret(secret string) string { return hashSecret(secret) }

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
