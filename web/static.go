package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	"github.com/gin-gonic/gin"
)

// static holds the CSS and the vendored htmx (htmx.min.js, version in
// static/README.md, licence in static/htmx.LICENSE).
//
//go:embed static/*.css static/*.js static/*.LICENSE
var static embed.FS

// asset is one embedded file with its content hash, which goes into its URL
// (?v=) so browsers may cache it and still see a new version at once.
type asset struct {
	data        []byte
	contentType string
	hash        string
}

type assets struct{ files map[string]asset }

func loadAssets() *assets {
	a := &assets{files: map[string]asset{}}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		panic("web: embedded static files: " + err.Error())
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := fs.ReadFile(static, "static/"+e.Name())
		if err != nil {
			panic("web: embedded static files: " + err.Error())
		}
		sum := sha256.Sum256(data)
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		a.files[e.Name()] = asset{data: data, contentType: ct, hash: hex.EncodeToString(sum[:6])}
	}
	return a
}

// url returns the versioned URL of a static file under prefix.
func (a *assets) url(prefix, name string) string {
	return prefix + "/static/" + name + "?v=" + a.files[name].hash
}

// static serves an embedded file.
func (u *UI) static(c *gin.Context) {
	name := c.Param("file")
	f, ok := u.assets.files[name]
	if !ok {
		c.Header("Content-Type", "text/plain; charset=utf-8")
		c.String(http.StatusNotFound, "not found")
		return
	}
	h := c.Writer.Header()
	if c.Query("v") == f.hash {
		h.Set("Cache-Control", "public, max-age=86400, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=86400")
	}
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", `"`+f.hash+`"`)
	http.ServeContent(c.Writer, c.Request, name, time.Time{}, bytes.NewReader(f.data))
}
