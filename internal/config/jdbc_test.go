package config

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestJDBCArchiveDSN(t *testing.T) {
	t.Parallel()
	rw := JDBCCredentials{user: "rw", password: "password123", hasUser: true, hasPassword: true}
	tests := []struct {
		name    string
		url     string
		cred    JDBCCredentials
		want    string
		dropped []string
	}{
		{"the original's", "jdbc:mysql://localhost:3306/cassata", rw, "mysql://rw:password123@localhost:3306/cassata", nil},
		{"no port", "jdbc:mysql://db/cassata", rw, "mysql://rw:password123@db/cassata", nil},
		{"mariadb", "jdbc:mariadb://db:3307/cassata", rw, "mysql://rw:password123@db:3307/cassata", nil},
		{"ipv6", "jdbc:mysql://[::1]:3306/cassata", rw, "mysql://rw:password123@[::1]:3306/cassata", nil},
		{"no password", "jdbc:mysql://db/cassata", JDBCCredentials{user: "ro", hasUser: true}, "mysql://ro@db/cassata", nil},
		{"an empty password", "jdbc:mysql://db/cassata", JDBCCredentials{user: "ro", hasUser: true, hasPassword: true}, "mysql://ro:@db/cassata", nil},
		{"credentials in the query", "jdbc:mysql://db/cassata?user=u&password=p", JDBCCredentials{}, "mysql://u:p@db/cassata", nil},
		{"credentials in the userinfo", "jdbc:mysql://u:p@db/cassata", JDBCCredentials{}, "mysql://u:p@db/cassata", nil},
		{"the section's credentials win", "jdbc:mysql://db/cassata?user=u&password=p", rw, "mysql://rw:password123@db/cassata", nil},
		{"useSSL=false", "jdbc:mysql://db/cassata?useSSL=false", rw, "mysql://rw:password123@db/cassata", nil},
		{"useSSL=true", "jdbc:mysql://db/cassata?useSSL=true", rw, "mysql://rw:password123@db/cassata?tls=true", nil},
		{"useSSL without verification", "jdbc:mysql://db/cassata?useSSL=true&verifyServerCertificate=false", rw,
			"mysql://rw:password123@db/cassata?tls=skip-verify", nil},
		{"requireSSL", "jdbc:mysql://db/cassata?requireSSL=true", rw, "mysql://rw:password123@db/cassata?tls=true", nil},
		{"mariadb trustServerCertificate", "jdbc:mariadb://db/cassata?useSsl=true&trustServerCertificate=true", rw,
			"mysql://rw:password123@db/cassata?tls=skip-verify", nil},
		{"sslMode=REQUIRED", "jdbc:mysql://db/cassata?sslMode=REQUIRED", rw, "mysql://rw:password123@db/cassata?tls=skip-verify", nil},
		{"sslMode=VERIFY_IDENTITY", "jdbc:mysql://db/cassata?sslMode=VERIFY_IDENTITY", rw, "mysql://rw:password123@db/cassata?tls=true", nil},
		{"sslMode=PREFERRED", "jdbc:mysql://db/cassata?sslMode=PREFERRED", rw, "mysql://rw:password123@db/cassata?tls=preferred", nil},
		{"sslMode=DISABLED", "jdbc:mysql://db/cassata?sslMode=DISABLED&useSSL=true", rw, "mysql://rw:password123@db/cassata", nil},
		{"timeouts", "jdbc:mysql://db/cassata?connectTimeout=5000&socketTimeout=30000", rw,
			"mysql://rw:password123@db/cassata?readTimeout=30000ms&timeout=5000ms&writeTimeout=30000ms", nil},
		{"zero timeouts keep the defaults", "jdbc:mysql://db/cassata?connectTimeout=0", rw, "mysql://rw:password123@db/cassata", nil},
		{"Connector/J's own parameters are dropped", "jdbc:mysql://db/cassata?useUnicode=true&characterEncoding=UTF-8&autoReconnect=true&serverTimezone=UTC", rw,
			"mysql://rw:password123@db/cassata", []string{"autoReconnect", "characterEncoding", "serverTimezone", "useUnicode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, dropped, err := JDBCArchiveDSN(tt.url, tt.cred)
			if err != nil || got != tt.want || !slices.Equal(dropped, tt.dropped) {
				t.Fatalf("got %q, dropped %v, err %v; want %q, dropped %v", got, dropped, err, tt.want, tt.dropped)
			}
		})
	}
}

// TestJDBCArchiveDSNEscapes: credentials with URL syntax in them survive.
func TestJDBCArchiveDSNEscapes(t *testing.T) {
	t.Parallel()
	for _, cred := range []JDBCCredentials{
		{user: "r@w:x", password: "p@ss:w/o?rd#%&=+ ü", hasUser: true, hasPassword: true},
		{user: "plain", password: "%41%", hasUser: true, hasPassword: true},
	} {
		dsn, _, err := JDBCArchiveDSN("jdbc:mysql://db:3306/cassata", cred)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%q does not parse: %v", dsn, err)
		}
		pw, _ := u.User.Password()
		if u.User.Username() != cred.user || pw != cred.password || u.Host != "db:3306" || u.Path != "/cassata" {
			t.Fatalf("%q reads back as user %q password %q host %q path %q", dsn, u.User.Username(), pw, u.Host, u.Path)
		}
	}
}

func TestJDBCArchiveDSNErrors(t *testing.T) {
	t.Parallel()
	rw := JDBCCredentials{user: "rw", password: "hunter2secret", hasUser: true, hasPassword: true}
	tests := []struct {
		name, url, want string
		cred            JDBCCredentials
	}{
		{"not JDBC", "mysql://db/cassata", "want a JDBC URL", rw},
		{"postgres", "jdbc:postgresql://db/cassata", "jdbc:postgresql is not supported", rw},
		{"load balancing", "jdbc:mysql:loadbalance://a,b/cassata", "not supported", rw},
		{"no host", "jdbc:mysql:///cassata", "names no host", rw},
		{"failover hosts", "jdbc:mysql://a:3306,b:3306/cassata", "several hosts", rw},
		{"no database", "jdbc:mysql://db:3306/", "names no database", rw},
		{"no database at all", "jdbc:mysql://db:3306", "names no database", rw},
		{"bad port", "jdbc:mysql://u:hunter2secret@db:99999/cassata", "not a port", JDBCCredentials{}},
		{"no user", "jdbc:mysql://db/cassata", "names no user", JDBCCredentials{}},
		{"bad timeout", "jdbc:mysql://db/cassata?connectTimeout=soon", "connectTimeout", rw},
		{"bad sslMode", "jdbc:mysql://db/cassata?sslMode=MAYBE", "sslMode", rw},
		{"bad useSSL", "jdbc:mysql://db/cassata?useSSL=perhaps", "useSSL", rw},
		{"unparsable", "jdbc:mysql://u:hunter2secret@db:3306/cassata%zz", "not a valid JDBC URL", JDBCCredentials{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn, _, err := JDBCArchiveDSN(tt.url, tt.cred)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, %v; want an error saying %q", dsn, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2secret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}
