package tenant

import (
	"os"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestMain stops the Redis Cluster the tests share when testenv.RedisModeEnv
// is cluster.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
