// Package config is the configuration of the cassata command: the Config
// struct and its defaults; Settings, the one table of every setting's
// flag, environment variable, YAML key, description, default and commands,
// from which BindFlags makes each command's typed flags, Flags.Load reads
// the environment and YAML keys, EnvHelp lists the variables in --help,
// and Reference writes the README's configuration reference; the
// precedence (flags > environment > YAML file > defaults, API.md §1); the
// YAML file format, including the original Java service's Dropwizard files
// and their JDBC URLs; and Validate, whose errors name the environment
// variable a user sets.
//
// cmd/cassata's cobra commands bind their flags here (internal/cli) and
// hand the loaded Config to internal/server (dev, server, worker,
// migrate), internal/appcli (apps) or internal/legacyimport (import).
package config

//go:generate go run ./gen -readme ../../README.md
