// Command ceiling is a measuring instrument for issue 16, not a data path: how much of direct
// throughput a compiled forwarder keeps on this machine, doing the per-call work a compiled
// lane could not cache away. Per request it looks the caller's token up in a cache (a compiled
// lane would ask the core's decision once per token, target and operation, as an external
// authoriser, and cache it), fills the operation's path template, mints a fresh ES256 call
// token (the core mints one per call, for its own jti) and forwards over pooled keep-alive
// connections. It checks nothing else and must never serve real traffic.
//
//	ceiling -listen 127.0.0.1:PORT -target 127.0.0.1:PORT -token TOKEN
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"time"
)

const prefix = "/v1/invoke/b/user_info/"

type forwarder struct {
	key    *ecdsa.PrivateKey
	header string
	token  string
	seq    atomic.Uint64
	proxy  *httputil.ReverseProxy
}

func (f *forwarder) callToken() (string, error) {
	now := time.Now().Unix()
	claims, err := json.Marshal(map[string]any{
		"iss": "vivified-core", "sub": "b", "aud": "b", "act": map[string]string{"sub": "core"},
		"caller": "a", "operation": "user_info", "type": "call",
		"iat": now, "exp": now + 60, "jti": fmt.Sprintf("ceiling-%d", f.seq.Add(1)),
	})
	if err != nil {
		return "", err
	}
	signing := f.header + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, f.key, digest[:])
	if err != nil {
		return "", err
	}
	signature := make([]byte, 64)
	r.FillBytes(signature[:32])
	s.FillBytes(signature[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(signature), nil
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rest, ok := strings.CutPrefix(req.URL.Path, prefix)
	if !ok || strings.Contains(rest, "/") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if req.Header.Get("Authorization") != "Bearer "+f.token { // the cached decision
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	token, err := f.callToken()
	if err != nil {
		http.Error(w, "call token", http.StatusInternalServerError)
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.URL.Path = "/api/users/" + rest
	f.proxy.ServeHTTP(w, req)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	target := flag.String("target", "", "the target plugin's address")
	token := flag.String("token", "", "the one caller token this instrument accepts")
	flag.Parse()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT","kid":"ceiling"}`))
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = *target
			r.Out.Host = *target
		},
		Transport: transport,
	}
	f := &forwarder{key: key, header: header, token: *token, proxy: proxy}
	log.Fatal(http.ListenAndServe(*listen, f))
}
