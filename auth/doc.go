// Package auth is who may call tidemark: operators, each with a name, a role
// (viewer or operator) and a token known to tidemark only by its SHA-256,
// and members, who prove who they are with a JWT their identity provider
// issued (HS256 with a shared secret, or RS256/ES256 with the provider's
// published key set). It knows nothing of HTTP requests; httpapi reads the
// credentials off a request and asks here whose they are.
package auth
