package callbacktoken

import (
	"encoding/base64"
	"strings"
	"testing"
)

func signer(t testing.TB, secrets ...string) *Signer {
	s, err := New(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenMatchesTheContract(t *testing.T) {
	s := signer(t, "0123456789abcdef0123")
	// Computed independently: printf 'smartrent-callback-v1:ORD-1' | openssl dgst -sha256 -hmac 0123456789abcdef0123 -binary | basenc --base64url | tr -d =
	const want = "T1JELTE.GkA9RIqIAT5vCfZCoRNBwgrr7ESIqztkAt5pTcP2lCw"
	if got := s.Token("ORD-1"); got != want {
		t.Fatalf("Token = %q, want %q", got, want)
	}
	if got := s.URL("https://cb.shop.example/", "", "ORD-1"); got != "https://cb.shop.example/v1/inbank/callbacks/"+want {
		t.Fatalf("URL = %q", got)
	}
}

func TestVerify(t *testing.T) {
	s := signer(t, "0123456789abcdef0123")
	good := s.Token("ORD/1 ä")
	id, sig, _ := strings.Cut(good, ".")
	rawSig, _ := base64.RawURLEncoding.DecodeString(sig)
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", good, true},
		{"empty", "", false},
		{"no dot", id + sig, false},
		{"padding", base64.URLEncoding.EncodeToString([]byte("ORD/1 ä")) + "." + sig, false},
		{"signature padded", id + "." + base64.URLEncoding.EncodeToString(rawSig), false},
		{"standard alphabet", id + "." + base64.RawStdEncoding.EncodeToString(rawSig), !strings.ContainsAny(sig, "-_")},
		{"other order", base64.RawURLEncoding.EncodeToString([]byte("ORD-2")) + "." + sig, false},
		{"altered signature", id + "." + sig[:len(sig)-2] + "AA", false},
		{"other secret", signer(t, "another-secret-of-16+").Token("ORD/1 ä"), false},
		{"extra part", good + ".x", false},
		{"huge id", strings.Repeat("QUFB", 1000) + "." + sig, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, shop, ok := s.Verify(tt.token)
			if ok != tt.ok {
				t.Fatalf("Verify(%q) ok = %v, want %v", tt.token, ok, tt.ok)
			}
			if ok && (gotID != "ORD/1 ä" || shop != "") {
				t.Fatalf("order = %q", gotID)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	old := signer(t, "old-secret-0123456789")
	rotated := signer(t, "new-secret-0123456789", "old-secret-0123456789")
	if _, _, ok := rotated.Verify(old.Token("ORD-1")); !ok {
		t.Fatal("a token signed with the old secret no longer verifies during rotation")
	}
	if got, want := rotated.Token("ORD-1"), signer(t, "new-secret-0123456789").Token("ORD-1"); got != want {
		t.Fatal("the first secret does not sign")
	}
	if _, _, ok := old.Verify(rotated.Token("ORD-1")); ok {
		t.Fatal("a token signed with the new secret verifies with only the old one")
	}
}

func TestNewRefusesWeakOrMissingSecrets(t *testing.T) {
	for _, list := range []string{"", " , ", "short"} {
		if _, err := New(Parse(list)); err == nil {
			t.Errorf("New(%q) accepted", list)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s := signer(b, "new-secret-0123456789", "old-secret-0123456789")
	tok := s.Token("ORD-123456")
	for b.Loop() {
		if _, _, ok := s.Verify(tok); !ok {
			b.Fatal("invalid")
		}
	}
}

func FuzzVerify(f *testing.F) {
	s := signer(f, "0123456789abcdef0123")
	f.Add(s.Token("ORD-1"))
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, token string) {
		id, shop, ok := s.Verify(token)
		if ok && s.TokenFor(shop, id) != token {
			t.Fatalf("accepted non-canonical token %q for %q", token, id)
		}
	})
}

func TestTokenBindsTheShop(t *testing.T) {
	s := signer(t, "0123456789abcdef0123")
	tok := s.TokenFor("lv-web", "ORD-1")
	id, shop, ok := s.Verify(tok)
	if !ok || id != "ORD-1" || shop != "lv-web" {
		t.Fatalf("Verify = %q %q %v", id, shop, ok)
	}
	idPart, rest, _ := strings.Cut(tok, ".")
	sig, _, _ := strings.Cut(rest, ".")
	// The same signature under another shop, or without a shop, is forged.
	for _, forged := range []string{
		idPart + "." + sig + "." + base64.RawURLEncoding.EncodeToString([]byte("ee-web")),
		idPart + "." + sig,
		s.Token("ORD-1") + "." + base64.RawURLEncoding.EncodeToString([]byte("lv-web")),
	} {
		if _, _, ok := s.Verify(forged); ok {
			t.Errorf("accepted %q", forged)
		}
	}
}
