// Package appcli is the `cassata apps` admin command: create, list and
// rotate applications (API keys, JWT and signing secrets) straight in
// Redis, without a running server.
package appcli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/internal/cli"
	"github.com/cassata/cassata/internal/config"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/store/redisstore"
)

// Command is `cassata apps` with its subcommands, writing what they show
// to out.
func Command(out io.Writer) *cobra.Command {
	apps := &cobra.Command{
		Use:   "apps",
		Short: "Create, list and rotate applications (API keys, JWT and signing secrets)",
		Long: `Create, list and rotate applications (API keys, JWT and signing secrets),
straight in Redis, without a running server. Connects to Redis like
"cassata server" (--redis-url, --redis-cluster, --namespace, --config).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("a subcommand is required: create, list, rotate or rotate-secret")
			}
			return cli.Usagef("unknown apps subcommand %q: want create, list, rotate or rotate-secret", args[0])
		},
	}
	cfg := cli.BindConfig(apps, config.ModeApps, true)
	sub := func(use, short string, nargs int, grace bool, run func(ctx context.Context, c *cmdCtx) error) {
		c := &cmdCtx{out: out}
		cmd := &cobra.Command{
			Use: use, Short: short,
			Args: func(cmd *cobra.Command, args []string) error {
				if len(args) != nargs {
					return cli.Usagef("expected %d argument(s), got %q", nargs, args)
				}
				return nil
			},
			RunE: cli.RunE(func(cmd *cobra.Command, args []string) error {
				conf, err := cfg.Load()
				if err != nil {
					return err
				}
				c.args = args
				if c.grace < 0 {
					return cli.Usagef("--grace must not be negative")
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				defer cancel()
				rdb, err := redisstore.Dial(conf.RedisConn())
				if err != nil {
					return err
				}
				defer rdb.Close()
				store, err := redisstore.New(ctx, rdb, redisstore.Config{Namespace: conf.Namespace, Shards: conf.Shards})
				if err != nil {
					return fmt.Errorf("connect to redis at %s: %w", redisstore.RedactURL(conf.RedisURL), err)
				}
				c.apps = tenant.NewApps(store, nil)
				return run(ctx, c)
			}),
		}
		cmd.Flags().BoolVar(&c.json, "json", false, "print JSON instead of text")
		if grace {
			def, what := time.Duration(0), "the old API key and JWT secret keep working for this long (0: refused at once)"
			if use == "rotate-secret NAME" {
				def, what = api.DefaultSecretGrace, "the old signing secret keeps signing for this long"
			}
			cmd.Flags().DurationVar(&c.grace, "grace", def, what)
		}
		apps.AddCommand(cmd)
	}
	sub("create NAME", "New application; prints its API key alone on the last line", 1, false, create)
	sub("list", "Applications (never keys; secrets masked)", 0, false, list)
	sub("rotate NAME", "New API key and JWT secret; the old ones end now, or after --grace", 1, true, rotate)
	sub("rotate-secret NAME", "New signing secret; the old one keeps signing for --grace", 1, true, rotateSecret)
	return apps
}

// cmdCtx is what a subcommand works with.
type cmdCtx struct {
	out   io.Writer
	apps  *tenant.Apps
	args  []string
	json  bool
	grace time.Duration
}

// Run runs "cassata apps args...", writing what it shows to out.
func Run(ctx context.Context, args []string, out io.Writer) error {
	cmd := Command(out)
	cli.Setup(cmd)
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	return cmd.ExecuteContext(ctx)
}

func create(ctx context.Context, c *cmdCtx) error {
	out, name := c.out, c.args[0]
	app, cr, err := c.apps.Create(ctx, name)
	if err != nil {
		return fmt.Errorf("apps create %s: %w", name, err)
	}
	if c.json {
		return writeJSON(out, map[string]string{"app": app.Name, "api_key": cr.APIKey,
			"jwt_secret": cr.JWTSecret, "signing_secret": cr.SigningSecret})
	}
	fmt.Fprintf(out, "Application %s created. Its credentials are shown this once; store them now.\n", app.Name)
	fmt.Fprintf(out, "Signing secret (receivers verify the webhook-signature of deliveries with it): %s\n", cr.SigningSecret)
	fmt.Fprintf(out, "JWT secret (HS256 key, if the application sends bearer JWTs instead of its key): %s\n", cr.JWTSecret)
	fmt.Fprintln(out, "API key (Authorization: Bearer <key>):")
	fmt.Fprintln(out, cr.APIKey)
	return nil
}

func list(ctx context.Context, c *cmdCtx) error {
	out := c.out
	list, err := c.apps.List(ctx)
	if err != nil {
		return fmt.Errorf("apps list: %w", err)
	}
	now := c.apps.Now()
	if c.json {
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
}

func rotate(ctx context.Context, c *cmdCtx) error {
	out, name := c.out, c.args[0]
	app, cr, err := c.apps.Rotate(ctx, name, c.grace)
	if err != nil {
		return fmt.Errorf("apps rotate %s: %w", name, err)
	}
	if c.json {
		return writeJSON(out, map[string]string{"app": app.Name, "api_key": cr.APIKey, "jwt_secret": cr.JWTSecret})
	}
	if c.grace == 0 {
		fmt.Fprintf(out, "Rotated the API key and JWT secret of %s: the old ones are refused from now on.\n", app.Name)
	} else {
		fmt.Fprintf(out, "Rotated the API key and JWT secret of %s: the old ones keep working until %s.\n",
			app.Name, c.apps.Now().Add(c.grace).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(out, "JWT secret: %s\n", cr.JWTSecret)
	fmt.Fprintln(out, "API key (shown this once):")
	fmt.Fprintln(out, cr.APIKey)
	return nil
}

func rotateSecret(ctx context.Context, c *cmdCtx) error {
	out, name, grace := c.out, c.args[0], c.grace
	app, cr, err := c.apps.RotateSecret(ctx, name, grace)
	if err != nil {
		return fmt.Errorf("apps rotate-secret %s: %w", name, err)
	}
	if c.json {
		return writeJSON(out, map[string]string{"app": app.Name, "signing_secret": cr.SigningSecret})
	}
	if grace == 0 {
		fmt.Fprintf(out, "Rotated the signing secret of %s: deliveries are signed with the new one only (workers pick it up within %s).\n",
			app.Name, delivery.DefaultSecretTTL)
	} else {
		fmt.Fprintf(out, "Rotated the signing secret of %s: deliveries carry signatures with both secrets until %s.\n",
			app.Name, c.apps.Now().Add(grace).UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(out, "Signing secret (shown this once):")
	fmt.Fprintln(out, cr.SigningSecret)
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
