package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// JDBCCredentials are the database section's user and password; each may be
// absent, and then the JDBC URL's own (user=, password= or user:pass@) count.
type JDBCCredentials struct {
	user, password       string
	hasUser, hasPassword bool
}

// JDBCArchiveDSN turns the original's JDBC URL and credentials into the
// archive DSN (store/archive):
//
//	jdbc:mysql://host:port/db?params + user + password  →  mysql://user:password@host:port/db?params
//
// jdbc:mariadb:// is read the same way. The credentials are URL-escaped.
// Connector/J's parameters are not the Go driver's (an unknown one would be
// sent to the server as a system variable and fail the connection), so the
// ones that matter are translated — TLS (sslMode, useSSL, requireSSL,
// verifyServerCertificate, trustServerCertificate) and timeouts
// (connectTimeout, socketTimeout, in milliseconds) — and the others (useUnicode,
// characterEncoding, autoReconnect, serverTimezone, ...) are returned as
// dropped, for a warning.
func JDBCArchiveDSN(jdbcURL string, cred JDBCCredentials) (dsn string, dropped []string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(jdbcURL), "jdbc:")
	if !ok {
		return "", nil, errors.New("want a JDBC URL, jdbc:mysql://host:port/db")
	}
	scheme, _, _ := strings.Cut(rest, "://")
	if scheme != "mysql" && scheme != "mariadb" {
		return "", nil, fmt.Errorf("jdbc:%s is not supported: the archive is MySQL or MariaDB (jdbc:mysql://host:port/db)", scheme)
	}
	u, err := url.Parse(rest)
	if err != nil {
		return "", nil, fmt.Errorf("not a valid JDBC URL (%s)", redactJDBCError(err))
	}
	host := u.Host
	if host == "" {
		return "", nil, errors.New("names no host (jdbc:mysql://host:port/db)")
	}
	if strings.Contains(host, ",") {
		return "", nil, errors.New("names several hosts (failover); name the primary alone")
	}
	if _, port, err := net.SplitHostPort(host); err == nil {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return "", nil, fmt.Errorf("port %q is not a port", port)
		}
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return "", nil, errors.New("names no database (jdbc:mysql://host:port/db)")
	}

	q := u.Query()
	user, password, hasPassword := "", "", false
	if u.User != nil {
		user = u.User.Username()
		password, hasPassword = u.User.Password()
	}
	if v := q.Get("user"); v != "" {
		user = v
	}
	if q.Has("password") {
		password, hasPassword = q.Get("password"), true
	}
	if cred.hasUser {
		user = cred.user
	}
	if cred.hasPassword {
		password, hasPassword = cred.password, true
	}
	if user == "" {
		return "", nil, errors.New("names no user: set the database section's user")
	}

	out := url.Values{}
	if tls, err := jdbcTLS(q); err != nil {
		return "", nil, err
	} else if tls != "" {
		out.Set("tls", tls)
	}
	for _, p := range []struct{ jdbc, driver string }{
		{"connectTimeout", "timeout"}, {"socketTimeout", "readTimeout"}, {"socketTimeout", "writeTimeout"},
	} {
		if !q.Has(p.jdbc) {
			continue
		}
		ms, err := strconv.Atoi(q.Get(p.jdbc))
		if err != nil || ms < 0 {
			return "", nil, fmt.Errorf("parameter %s=%q: want milliseconds", p.jdbc, q.Get(p.jdbc))
		}
		if ms > 0 { // 0 is "no timeout" in Connector/J: keep the archive's defaults
			out.Set(p.driver, strconv.Itoa(ms)+"ms")
		}
	}
	for name := range q {
		switch name {
		case "user", "password", "connectTimeout", "socketTimeout":
		default:
			if !tlsParams[name] {
				dropped = append(dropped, name)
			}
		}
	}
	slices.Sort(dropped)

	userinfo := url.User(user)
	if hasPassword {
		userinfo = url.UserPassword(user, password)
	}
	d := url.URL{Scheme: "mysql", User: userinfo, Host: host, Path: "/" + db, RawQuery: out.Encode()}
	return d.String(), dropped, nil
}

// tlsParams are the JDBC parameters jdbcTLS reads.
var tlsParams = map[string]bool{"sslMode": true, "useSSL": true, "useSsl": true, "requireSSL": true,
	"verifyServerCertificate": true, "trustServerCertificate": true}

// jdbcTLS translates Connector/J's (and MariaDB Connector/J's) TLS
// parameters into go-sql-driver/mysql's tls value ("" : no TLS). A URL that
// asked for TLS keeps it: dropping it would send the password in clear.
func jdbcTLS(q url.Values) (string, error) {
	if q.Has("sslMode") {
		switch strings.ToUpper(strings.ReplaceAll(q.Get("sslMode"), "-", "_")) {
		case "DISABLED", "DISABLE":
			return "", nil
		case "PREFERRED":
			return "preferred", nil
		case "REQUIRED", "TRUST":
			return "skip-verify", nil // encrypted, certificate not checked, as in Connector/J
		case "VERIFY_CA", "VERIFY_IDENTITY", "VERIFY_FULL":
			return "true", nil
		}
		return "", fmt.Errorf("parameter sslMode=%q is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY", q.Get("sslMode"))
	}
	on := func(name string) (bool, error) {
		if !q.Has(name) {
			return false, nil
		}
		b, ok := parseBool(q.Get(name))
		if !ok {
			return false, fmt.Errorf("parameter %s=%q: want true or false", name, q.Get(name))
		}
		return b, nil
	}
	var want bool
	for _, name := range []string{"useSSL", "useSsl", "requireSSL"} {
		b, err := on(name)
		if err != nil {
			return "", err
		}
		want = want || b
	}
	if !want {
		return "", nil
	}
	trust, err := on("trustServerCertificate")
	if err != nil {
		return "", err
	}
	verify := true
	if q.Has("verifyServerCertificate") {
		if verify, err = on("verifyServerCertificate"); err != nil {
			return "", err
		}
	}
	if trust || !verify {
		return "skip-verify", nil
	}
	return "true", nil
}

// redactJDBCError keeps a URL parse error without the URL it quotes (which
// may hold a password).
func redactJDBCError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed"
}
