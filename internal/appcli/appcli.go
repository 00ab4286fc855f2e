// Package appcli is the `cassata apps` admin command: create, list and
// rotate applications (API keys, JWT and signing secrets) straight in
// Redis, without a running server.
package appcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/store/redisstore"
)

// Usage is the command's help text.
const Usage = `usage:
  cassata apps create NAME [--json]                 new application; prints its API key alone on the last line
  cassata apps list [--json]                        applications (never keys; secrets masked)
  cassata apps rotate NAME [--grace D] [--json]     new API key and JWT secret; the old ones end now, or after D
  cassata apps rotate-secret NAME [--grace D] [--json]
                                                    new signing secret; the old one keeps signing for D (default 24h)
Connects to Redis like "cassata server" (CASSATA_REDIS_URL, --redis-url, --redis-cluster, --namespace, --config).`

// appsFlags are the apps command's own flags. They, the common flags and
// the positional arguments may come in any order: the arguments are sorted
// out here before the common flags are parsed (every common flag takes a
// value, as --flag value or --flag=value).
type appsFlags struct {
	json     bool
	grace    time.Duration
	graceSet bool
}

func splitAppsFlags(args []string) (f appsFlags, common, positional []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		switch name {
		case "json":
			f.json = !hasValue || value == "true"
		case "grace":
			if !hasValue {
				if i+1 >= len(args) {
					return f, nil, nil, errors.New("--grace needs a duration, e.g. --grace 1h")
				}
				i++
				value = args[i]
			}
			d, err := time.ParseDuration(value)
			if err != nil || d < 0 {
				return f, nil, nil, fmt.Errorf("--grace: not a duration: %q", value)
			}
			f.grace, f.graceSet = d, true
		case "h", "help":
			common = append(common, a)
		default:
			common = append(common, a)
			if !hasValue && i+1 < len(args) {
				i++
				common = append(common, args[i])
			}
		}
	}
	return f, common, positional, nil
}

// Run runs "cassata apps args...", writing what it shows to out.
func Run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(out, Usage)
		if len(args) == 0 {
			return errors.New("apps: a subcommand is required")
		}
		return nil
	}
	sub := args[0]
	fl, common, pos, err := splitAppsFlags(args[1:])
	if err != nil {
		return err
	}
	cfg, extra, err := config.Load("apps", common)
	if err != nil {
		return err
	}
	pos = append(pos, extra...)
	want := map[string]int{"create": 1, "list": 0, "rotate": 1, "rotate-secret": 1}
	n, known := want[sub]
	if !known {
		return fmt.Errorf("apps: unknown subcommand %q\n%s", sub, Usage)
	}
	if len(pos) != n {
		return fmt.Errorf("apps %s: expected %d argument(s), got %q\n%s", sub, n, pos, Usage)
	}
	if fl.graceSet && sub != "rotate" && sub != "rotate-secret" {
		return fmt.Errorf("apps %s: --grace only applies to rotate and rotate-secret", sub)
	}

	conn := cfg.RedisConn()
	rdb, err := redisstore.Dial(conn)
	if err != nil {
		return err
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: conn.Store.Namespace, Shards: conn.Store.Shards})
	if err != nil {
		return fmt.Errorf("connect to redis at %s: %w", redisstore.RedactURL(cfg.RedisURL), err)
	}
	apps := tenant.NewApps(store, nil)

	switch sub {
	case "create":
		app, cr, err := apps.Create(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("apps create %s: %w", pos[0], err)
		}
		if fl.json {
			return writeJSON(out, map[string]string{"app": app.Name, "api_key": cr.APIKey,
				"jwt_secret": cr.JWTSecret, "signing_secret": cr.SigningSecret})
		}
		fmt.Fprintf(out, "Application %s created. Its credentials are shown this once; store them now.\n", app.Name)
		fmt.Fprintf(out, "Signing secret (receivers verify the webhook-signature of deliveries with it): %s\n", cr.SigningSecret)
		fmt.Fprintf(out, "JWT secret (HS256 key, if the application sends bearer JWTs instead of its key): %s\n", cr.JWTSecret)
		fmt.Fprintln(out, "API key (Authorization: Bearer <key>):")
		fmt.Fprintln(out, cr.APIKey)
	case "list":
		list, err := apps.List(ctx)
		if err != nil {
			return fmt.Errorf("apps list: %w", err)
		}
		now := apps.Now()
		if fl.json {
			views := make([]api.AppView, 0, len(list))
			for _, app := range list {
				views = append(views, api.ViewApp(app, now))
			}
			return writeJSON(out, views)
		}
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tAPI KEYS\tSIGNING SECRETS")
		for _, app := range list {
			v := api.ViewApp(app, now)
			var keys, secrets []string
			for _, k := range v.Keys {
				keys = append(keys, k.Hint+until(k.ExpiresAt))
			}
			for _, s := range v.SigningSecrets {
				secrets = append(secrets, s.Masked+until(s.ExpiresAt))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.CreatedAt, strings.Join(keys, ", "), strings.Join(secrets, ", "))
		}
		return tw.Flush()
	case "rotate":
		app, cr, err := apps.Rotate(ctx, pos[0], fl.grace)
		if err != nil {
			return fmt.Errorf("apps rotate %s: %w", pos[0], err)
		}
		if fl.json {
			return writeJSON(out, map[string]string{"app": app.Name, "api_key": cr.APIKey, "jwt_secret": cr.JWTSecret})
		}
		if fl.grace == 0 {
			fmt.Fprintf(out, "Rotated the API key and JWT secret of %s: the old ones are refused from now on.\n", app.Name)
		} else {
			fmt.Fprintf(out, "Rotated the API key and JWT secret of %s: the old ones keep working until %s.\n",
				app.Name, apps.Now().Add(fl.grace).UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(out, "JWT secret: %s\n", cr.JWTSecret)
		fmt.Fprintln(out, "API key (shown this once):")
		fmt.Fprintln(out, cr.APIKey)
	case "rotate-secret":
		grace := api.DefaultSecretGrace
		if fl.graceSet {
			grace = fl.grace
		}
		app, cr, err := apps.RotateSecret(ctx, pos[0], grace)
		if err != nil {
			return fmt.Errorf("apps rotate-secret %s: %w", pos[0], err)
		}
		if fl.json {
			return writeJSON(out, map[string]string{"app": app.Name, "signing_secret": cr.SigningSecret})
		}
		if grace == 0 {
			fmt.Fprintf(out, "Rotated the signing secret of %s: deliveries are signed with the new one only (workers pick it up within %s).\n",
				app.Name, delivery.DefaultSecretTTL)
		} else {
			fmt.Fprintf(out, "Rotated the signing secret of %s: deliveries carry signatures with both secrets until %s.\n",
				app.Name, apps.Now().Add(grace).UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(out, "Signing secret (shown this once):")
		fmt.Fprintln(out, cr.SigningSecret)
	}
	return nil
}

func until(t *string) string {
	if t == nil {
		return ""
	}
	return " (until " + *t + ")"
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	return enc.Encode(v)
}
