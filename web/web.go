package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
)

// Backend is what the UI needs from the domain. *scheduler.Scheduler
// satisfies it.
type Backend interface {
	Dashboard(ctx context.Context) (scheduler.Dashboard, error)
	Search(ctx context.Context, q scheduler.SearchQuery) (scheduler.SearchPage, error)
	Get(ctx context.Context, app, id string) (*scheduler.Event, error)
	Cancel(ctx context.Context, app, id string) (*scheduler.Event, error)
	Retry(ctx context.Context, app, id string) (*scheduler.Event, error)
	RunNow(ctx context.Context, app, id string) (*scheduler.Event, error)
	BulkRetry(ctx context.Context, q scheduler.SearchQuery) (int, error)
	BulkCancel(ctx context.Context, q scheduler.SearchQuery) (int, error)
}

var _ Backend = (*scheduler.Scheduler)(nil)

// Defaults of Config.
const (
	// DefaultSessionTTL is how long a login lasts.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultSessionSalt is mixed into the session key when Config.SessionSalt is empty.
	DefaultSessionSalt = "cassata-admin-session"
	// DefaultLoginFailures is how many failed logins one client may make per minute.
	DefaultLoginFailures = 5
)

// ArchiveHealth is whether the archive database answers, for the dashboard.
type ArchiveHealth struct {
	// Configured is false without an archive.
	Configured bool
	Up         bool
	// Since is when it last went up or down; zero when unknown.
	Since time.Time
}

// Username is the only user: the login form asks for it with the password.
const Username = "admin"

// Config configures the admin UI.
type Config struct {
	// Backend serves the data. Required.
	Backend Backend
	// Password is the admin password (CASSATA_ADMIN_PASSWORD). Empty means
	// none: then the UI is only served when Open is set.
	Password string
	// Open serves the UI without a login when Password is empty, to
	// loopback clients only (dev mode). Ignored when Password is set.
	Open bool
	// BasePath is the path prefix the UI lives under behind a reverse proxy
	// that does not strip it, e.g. "/cassata" puts the UI at /cassata/admin/.
	// Defaults to "" (the UI at /admin/).
	BasePath string
	// SessionTTL is how long a login lasts. Defaults to DefaultSessionTTL (12h).
	SessionTTL time.Duration
	// SessionSalt is mixed with Password into the key that signs session
	// cookies. Every replica of a deployment must use the same; a different
	// salt per deployment means a cookie of one is no good at another with
	// the same password. Defaults to DefaultSessionSalt.
	SessionSalt string
	// LoginFailures is how many failed logins a client may make per minute
	// before it gets 429. Defaults to DefaultLoginFailures (5).
	LoginFailures int
	// ClientIP names the client of a request for the login rate limit.
	// Defaults to the connection's remote address; behind a reverse proxy,
	// supply one that reads the header the proxy sets (and that clients
	// cannot forge past it).
	ClientIP func(r *http.Request) string
	// Apps, when set, adds the Applications page (names, key hints and
	// masked secrets; nothing secret is ever shown).
	Apps AppLister
	// Topics, when set, serves the Topics pages: subscriptions (create,
	// edit, disable, delete), the filter tester, messages with their
	// deliveries. Without it the Topics page says topics are not enabled.
	Topics *Topics
	// Schedules, when set, serves the Schedules pages: recurring schedules
	// with their next occurrences and latest runs; pause, resume, trigger
	// now, delete. Without it the Schedules page says schedules are not
	// enabled.
	Schedules Schedules
	// Flows, when set, serves the Flows page: flow keys' limits (set,
	// pause, resume, delete) and paused applications (pause, resume).
	// Without it the Flows page says flow control is not enabled.
	Flows Flows
	// ArchiveHealth, when set, puts the archive's state (up, or down since
	// when) on the dashboard. Nil: the dashboard shows no state line.
	ArchiveHealth func(ctx context.Context) ArchiveHealth
	// Clock tells the time for relative times and session expiry.
	// Defaults to scheduler.SystemClock.
	Clock scheduler.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.BasePath = strings.TrimRight(c.BasePath, "/")
	if c.BasePath != "" && !strings.HasPrefix(c.BasePath, "/") {
		c.BasePath = "/" + c.BasePath
	}
	c.SessionTTL = cmp.Or(c.SessionTTL, DefaultSessionTTL)
	c.SessionSalt = cmp.Or(c.SessionSalt, DefaultSessionSalt)
	c.LoginFailures = cmp.Or(c.LoginFailures, DefaultLoginFailures)
	if c.ClientIP == nil {
		c.ClientIP = remoteIP
	}
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Backend == nil {
		return errors.New("web: Backend is required")
	}
	if strings.ContainsAny(c.BasePath, "?#%\\\"'<> \t\r\n") || strings.Contains(c.BasePath, "//") {
		return fmt.Errorf("web: BasePath %q must be a plain URL path such as /cassata", c.BasePath)
	}
	if c.Topics != nil && (c.Topics.Subscriptions == nil || c.Topics.Messages == nil) {
		return errors.New("web: Topics needs both Subscriptions and Messages")
	}
	if c.SessionTTL < 0 {
		return fmt.Errorf("web: SessionTTL must be positive, not %s", c.SessionTTL)
	}
	if c.LoginFailures < 0 {
		return fmt.Errorf("web: LoginFailures must be positive, not %d", c.LoginFailures)
	}
	return nil
}

// UI is the admin UI, ready to be mounted on a gin engine.
type UI struct {
	cfg     Config
	b       Backend
	log     *slog.Logger
	clock   scheduler.Clock
	prefix  string // BasePath + "/admin"
	session *sessions
	limiter *limiter
	assets  *assets
}

// New checks the config and returns the UI.
func New(cfg Config) (*UI, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u := &UI{
		cfg:     cfg,
		b:       cfg.Backend,
		log:     cfg.Logger,
		clock:   cfg.Clock,
		prefix:  cfg.BasePath + "/admin",
		limiter: newLimiter(cfg.LoginFailures, time.Minute),
		assets:  loadAssets(),
	}
	if cfg.Password != "" {
		u.session = newSessions(cfg.Password, cfg.SessionSalt, cfg.SessionTTL)
	}
	return u, nil
}

// Prefix returns the path the UI lives under: BasePath + "/admin".
func (u *UI) Prefix() string { return u.prefix }

// Mount adds the UI's routes to r: everything under BasePath+"/admin", and
// "/" (and BasePath+"/") redirecting there.
func (u *UI) Mount(r *gin.Engine) {
	p := u.prefix
	toDashboard := func(c *gin.Context) {
		u.securityHeaders(c)
		c.Redirect(http.StatusFound, p+"/")
	}
	r.GET("/", toDashboard)
	if u.cfg.BasePath != "" {
		r.GET(u.cfg.BasePath, toDashboard)
		r.GET(u.cfg.BasePath+"/", toDashboard)
	}
	r.GET(p, func(c *gin.Context) {
		u.securityHeaders(c)
		c.Redirect(http.StatusMovedPermanently, p+"/")
	})

	g := r.Group(p, u.securityHeaders)
	g.GET("/static/:file", u.static)

	pages := g.Group("", u.gate, u.csrf)
	pages.GET("/login", u.loginPage)
	pages.POST("/login", u.login)
	pages.POST("/logout", u.logout)

	in := pages.Group("", u.requireSession)
	in.GET("/", u.dashboard)
	in.GET("/events", u.events)
	in.POST("/events/cancel", u.bulkCancel)
	in.GET("/events/:app/:id", u.event)
	in.POST("/events/:app/:id/cancel", u.action(actCancel))
	in.POST("/events/:app/:id/retry", u.action(actRetry))
	in.POST("/events/:app/:id/run", u.action(actRunNow))
	in.GET("/failures", u.failures)
	in.POST("/failures/retry", u.bulkRetry)
	u.mountTopics(in)
	u.mountSchedules(in)
	u.mountFlows(in)
	if u.cfg.Apps != nil {
		in.GET("/apps", u.apps)
	}
}

// contentSecurityPolicy allows nothing but this origin's own scripts, styles
// and images: no inline script or style anywhere in the UI.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// securityHeaders sets the headers every UI response carries.
func (u *UI) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// gate refuses everything when no password is set, unless the UI is open
// (dev mode) and the client is on this machine.
func (u *UI) gate(c *gin.Context) {
	if u.session != nil {
		return
	}
	if u.cfg.Open && isLoopback(c.Request.RemoteAddr) {
		return
	}
	u.renderError(c, http.StatusServiceUnavailable, errorView{
		Title:   "Set an admin password",
		Message: "The admin UI needs a password. Set CASSATA_ADMIN_PASSWORD and restart Cassata, then log in as admin.",
	})
	c.Abort()
}

// requireSession sends requests without a valid session to the login form.
func (u *UI) requireSession(c *gin.Context) {
	if u.session == nil {
		return // open dev mode, past the gate
	}
	if u.session.valid(c.Request, u.clock.Now()) {
		c.Set(ctxLoggedIn, true)
		return
	}
	next := c.Request.URL.RequestURI()
	if c.Request.Method != http.MethodGet {
		// The form's own page, not the POST target, is where to come back to.
		next = u.prefix + "/"
	}
	c.Redirect(http.StatusFound, u.prefix+"/login?next="+urlQueryEscape(next))
	c.Abort()
}

const ctxLoggedIn = "cassata.loggedIn"

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
