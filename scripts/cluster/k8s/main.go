// Command tether-k8s is a hyperkube-style multiplexer: one statically linked
// binary holding kube-apiserver, kube-controller-manager, kube-scheduler,
// kubelet, kube-proxy and kubectl. Linking the Kubernetes code base once
// instead of six times saves most of the cold build time and ~400 MB of disk.
//
// It dispatches on the name it was invoked as (symlinks kubectl, kubelet, ...
// pointing at it) or, when called by its own name, on the first argument:
//
//	kubectl get nodes            (argv[0] = kubectl)
//	tether-k8s kubectl get nodes (first argument)
//
// It also carries one helper, cri-reset (see crireset.go).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	_ "time/tzdata" // CronJob time zones (apiserver, controller-manager)

	"github.com/spf13/cobra"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl auth plugins
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// Constructors are only called for the component actually run, so one
// component's flag and feature-gate setup never leaks into another's.
var servers = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kubelet":                 kubelet.NewKubeletCommand,
	"kube-proxy":              proxy.NewProxyCommand,
}

func main() {
	name := filepath.Base(os.Args[0])
	if _, ok := servers[name]; !ok && name != "kubectl" && name != "cri-reset" {
		if len(os.Args) < 2 {
			usage()
			os.Exit(2)
		}
		// Shift so the component sees itself as argv[0]; cobra and kubectl's
		// plugin handler both read os.Args.
		os.Args = os.Args[1:]
		name = filepath.Base(os.Args[0])
	}
	if name == "cri-reset" {
		os.Exit(criReset(os.Args[1:]))
	}
	if name == "kubectl" {
		command := kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
		return
	}
	newCmd, ok := servers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "tether-k8s: unknown component %q\n", name)
		usage()
		os.Exit(2)
	}
	os.Exit(cli.Run(newCmd()))
}

func usage() {
	names := []string{"kubectl", "cri-reset"}
	for n := range servers {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: tether-k8s COMPONENT [args...]\ncomponents: %v\n", names)
}
