package httpapi

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// AdminUser is the user name of HTTP Basic credentials for the operator
// pages; the password is ADMIN_TOKEN.
const AdminUser = "admin"

// RequireAdmin guards an operator page (River UI, the batch page) and every
// request it makes: it passes on a request carrying ADMIN_TOKEN as
// "Authorization: Bearer <token>" or as HTTP Basic credentials admin:<token>,
// and answers anything else 401 with a Basic challenge, so a browser asks
// for them. With no token configured the page does not exist (404).
//
// A browser sends saved Basic credentials with any request to the page, a
// form another site posts included, so unsafe requests from another origin
// are refused (403, net/http's CrossOriginProtection) before the
// credentials are looked at.
func RequireAdmin(token string, next http.Handler) http.Handler {
	sameOrigin := http.NewCrossOriginProtection()
	return sameOrigin.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			http.NotFound(w, r)
			return
		}
		if got, ok := adminSecret(r); !ok || !tokenMatches(got, token) {
			w.Header().Set("WWW-Authenticate", `Basic realm="tidemark"`)
			http.Error(w, "401 unauthorized: log in as admin with ADMIN_TOKEN as the password", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// adminSecret returns the secret a request presents: a bearer token, or the
// password of Basic credentials whose user is AdminUser.
func adminSecret(r *http.Request) (string, bool) {
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return got, got != ""
	}
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(AdminUser)) != 1 {
		return "", false
	}
	return pass, pass != ""
}

// tokenMatches compares a presented secret with ADMIN_TOKEN in constant time.
func tokenMatches(got, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}
