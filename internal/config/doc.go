// Package config is the configuration of the cassata command: the Config
// struct and its defaults, Load with its precedence (flags > environment >
// YAML file > defaults, API.md §1), the YAML file format, including the
// original Java service's Dropwizard files and their JDBC URLs, and
// Validate, whose errors name the environment variable a user sets.
//
// cmd/cassata calls Load and hands the result to internal/server (dev,
// server, worker, migrate), internal/appcli (apps) or internal/legacyimport
// (import).
package config

//go:generate go run ./gen -readme ../../README.md
