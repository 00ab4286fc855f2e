// Package tenant is Cassata's multi-tenancy: the applications that share a
// deployment, their credentials, and how a request proves which one it is.
//
// Apps (apps.go) manages the tenants: each has API keys stored as SHA-256
// hashes (indexed hash -> application, so authenticating a request is one
// lookup), a JWT secret for HS256 bearer tokens (jwt.go) and a signing
// secret. Rotations put a new credential first and end the old ones at once
// or after a grace. The deliverer's Signer (scheduler/delivery) adds the Standard
// Webhooks headers to every delivery of an application with a signing
// secret, one signature per secret still valid, reading the secrets at most
// once per 10 s per application.
//
// The package keeps no state of its own: the applications live in Redis
// behind AppStore (store/redisstore implements it). Secrets are Secret
// values that print masked, so they cannot leak into logs by accident.
package tenant
