using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.Testing;

namespace Consort.Server.Tests;

/// <summary>
/// The official OpenAI JavaScript client against the real <c>consort serve</c> command serving examples/serve.json
/// (stories260k and the logit_fusion of stories260k + llama2xs). The npm install is cached under artifacts/npm-openai.
/// </summary>
public sealed class JsClientTests
{
    private const string OpenAIPackage = "openai@6.49.0";

    [Fact]
    public async Task Official_openai_js_client_talks_to_consort_serve()
    {
        string npmDir = await EnsureOpenAIPackageAsync();
        using var tmp = new TempDir();
        // examples/serve.json with absolute model paths, a keys file and a free loopback port.
        string examples = Path.Combine(TestPaths.RepoRoot, "examples");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(examples, "serve.json")))!.AsObject();
        foreach (var m in config["models"]!.AsArray())
            m!["path"] = Path.GetFullPath(m["path"]!.GetValue<string>(), examples);
        File.WriteAllText(tmp.File("keys.txt"), "js-test-key\n");
        config["server"]!["api_keys_file"] = tmp.File("keys.txt");
        File.WriteAllText(tmp.File("serve.json"), config.ToJsonString());
        string url = $"http://127.0.0.1:{TestNet.FreePort()}";

        var root = new RootCommand();
        root.Subcommands.Add(new ServeCommand().Build());
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var serving = root.Parse(["serve", tmp.File("serve.json"), "--urls", url]).InvokeAsync(new InvocationConfiguration(), cts.Token);
        try
        {
            await WaitHealthyAsync(url, serving);
            var psi = new ProcessStartInfo("node", [Path.Combine(TestPaths.RepoRoot, "tests", "js", "openai-client.mjs")])
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            psi.Environment["CONSORT_NPM_DIR"] = npmDir;
            psi.Environment["CONSORT_BASE_URL"] = url + "/v1";
            psi.Environment["CONSORT_KEY"] = "js-test-key";
            psi.Environment["CONSORT_MODELS"] = "stories260k,fusion";
            var (code, stdout, stderr) = await RunAsync(psi, TimeSpan.FromSeconds(120));
            Assert.True(code == 0, $"node exited {code}\nstdout: {stdout}\nstderr: {stderr}");
            Assert.Contains("CONSORT_JS_OK", stdout);
            var report = JsonNode.Parse(stdout[(stdout.IndexOf("CONSORT_JS_OK", StringComparison.Ordinal) + 14)..])!;
            Assert.StartsWith(",", report["models"]!["stories260k"]!["completion"]!.GetValue<string>());
            Assert.StartsWith(",", report["models"]!["fusion"]!["completion"]!.GetValue<string>());
        }
        finally
        {
            cts.Cancel();
            Assert.Equal(0, await serving.WaitAsync(TimeSpan.FromSeconds(20)));
        }
    }

    private static async Task<string> EnsureOpenAIPackageAsync()
    {
        string dir = Path.Combine(TestPaths.RepoRoot, "artifacts", "npm-openai");
        string pkg = Path.Combine(dir, "node_modules", "openai", "package.json");
        string version = OpenAIPackage.Split('@')[1];
        if (File.Exists(pkg) && JsonNode.Parse(File.ReadAllText(pkg))!["version"]!.GetValue<string>() == version) return dir;
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo("npm", ["install", OpenAIPackage, "--no-audit", "--no-fund", "--silent", "--prefix", dir])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        var (code, stdout, stderr) = await RunAsync(psi, TimeSpan.FromSeconds(180));
        Assert.True(code == 0 && File.Exists(pkg), $"npm install {OpenAIPackage} failed ({code}): {stdout} {stderr}");
        return dir;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(ProcessStartInfo psi, TimeSpan limit)
    {
        using var p = Process.Start(psi)!;
        var outTask = p.StandardOutput.ReadToEndAsync();
        var errTask = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{psi.FileName} did not finish within {limit.TotalSeconds} s");
        }
        return (p.ExitCode, await outTask, await errTask);
    }

    private static async Task WaitHealthyAsync(string url, Task<int> serving)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(90))
        {
            if (serving.IsCompleted) throw new InvalidOperationException($"consort serve exited early with {await serving}");
            try
            {
                using var r = await http.GetAsync(url + "/health");
                if (r.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(200);
        }
        throw new TimeoutException("consort serve did not become healthy within 90 s");
    }

}
