package e2e

import (
	"os"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/internal/mysqltest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	code := m.Run()
	stopBrowser()
	mysqltest.StopShared()
	os.Exit(code)
}
