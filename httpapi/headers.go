package httpapi

import "net/http"

// Nosniff has every answer of next say X-Content-Type-Options: nosniff, so
// a browser never runs a JSON or text answer as a script or a page.
func Nosniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// NoFraming keeps the pages of next out of every other site's frames
// (clickjacking): Content-Security-Policy frame-ancestors 'none', and
// X-Frame-Options DENY for browsers without CSP.
func NoFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}
