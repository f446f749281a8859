package oidctest

import "testing"

// NewBench publishes and signs with the fixed benchmark key of its algorithm, the same in
// every Provider, and ID tokens signed with it verify.
func TestNewBenchSignsWithTheFixedKey(t *testing.T) {
	for _, alg := range []string{"", algRS256, algES256} {
		t.Run("alg="+alg, func(t *testing.T) {
			op, err := NewBench(Options{SigningAlg: alg})
			if err != nil {
				t.Fatal(err)
			}
			defer op.Close()
			want := BenchKeyID(alg)
			if want == "" {
				t.Fatal("BenchKeyID is empty")
			}
			set := fetchJWKS(t, op)
			if len(set.Keys) != 1 || set.Keys[0].KeyID != want {
				t.Fatalf("JWKS = %+v, want only the benchmark key %s", set.Keys, want)
			}
			toks := mustTokens(t, op, SubjectBindIDKnown)
			idt, _ := toks["id_token"].(string)
			header, _, _ := decodeJWT(t, idt)
			if header["kid"] != want {
				t.Errorf("ID token kid = %v, want %s", header["kid"], want)
			}
			if _, err := verifyJWT(t, op, idt); err != nil {
				t.Errorf("ID token does not verify: %v", err)
			}
		})
	}
	if BenchKeyID(algRS256) == BenchKeyID(algES256) {
		t.Error("the RS256 and ES256 benchmark keys have the same kid")
	}
	if _, err := NewBench(Options{SigningAlg: "HS256"}); err == nil {
		t.Error("NewBench accepted HS256")
	}
}
