using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Consort.Server.Keys;
using Consort.Testing;

namespace Consort.Server.Tests;

/// <summary>A keys file with per-key rate limits, budgets and allowed models; usage readable per key; keys never shown.</summary>
public sealed class KeysTests
{
    private const string KeyA = "sk-team-a-3f9c1d2e7b";
    private const string KeyB = "sk-team-b-8a7e6d5c4b";
    private const string Admin = "sk-admin-0f1e2d3c4b5a";

    internal static string WriteKeys(TempDir dir, string json)
    {
        File.WriteAllText(dir.File("keys.json"), json);
        return dir.File("keys.json");
    }

    internal static string KeysJson(long rpm = 3, long? budgetTokens = null) => $$"""
        {"keys": [
          {"name": "team-a", "key": "{{KeyA}}", "rpm": {{rpm}}, "models": ["alpha"]{{(budgetTokens is { } b ? $", \"budget\": {{\"tokens\": {b}, \"period\": \"day\"}}" : "")}} },
          {"name": "team-b", "key": "{{KeyB}}", "tpm": 10},
          {"name": "ops", "key_sha256": "{{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Admin)))}}", "admin": true}
        ]}
        """;

    internal static HttpClient Client(string url, string key)
    {
        var c = new HttpClient { BaseAddress = new Uri(url) };
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return c;
    }

    internal static JsonObject Chat(string model, string text) =>
        new() { ["model"] = model, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }) };

    [Fact]
    public async Task Rate_limits_budgets_and_allowed_models_answer_with_the_openai_shape_and_retry_after()
    {
        using var dir = new TempDir();
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha"), Fakes.Model("beta")], new ServerOptions { ApiKeysFile = WriteKeys(dir, KeysJson(rpm: 3)) }, key: null);
        using var a = Client(s.Url, KeyA);
        for (int i = 0; i < 3; i++) Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("alpha", "x"), a)).Status);
        using (var r = await a.PostAsync("/v1/chat/completions", new StringContent(Chat("alpha", "x").ToJsonString(), Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
            Assert.InRange(r.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 60);
            var j = JsonNode.Parse(await r.Content.ReadAsStringAsync());
            OpenAISurfaceTests.AssertOpenAIError(j, code: "rate_limit_exceeded");
            Assert.Contains("team-a", j!["error"]!["message"]!.GetValue<string>());
        }
        // Allowed models: another model is refused and not listed.
        using var a2 = Client(s.Url, KeyA);
        var models = JsonNode.Parse(await a2.GetStringAsync("/v1/models"))!["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>());
        Assert.Equal(["alpha"], models);

        // Tokens per minute: the first request passes, its tokens exhaust the minute, the next is refused.
        using var b = Client(s.Url, KeyB);
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("beta", "one two three"), b)).Status);
        var (st, jb) = await s.PostAsync("/v1/chat/completions", Chat("beta", "x"), b);
        Assert.Equal(429, st);
        Assert.Contains("tokens per minute", jb!["error"]!["message"]!.GetValue<string>());

        // Usage per key through the admin endpoint (admin key only) and /metrics, by name.
        using var ops = Client(s.Url, Admin);
        var usage = JsonNode.Parse(await ops.GetStringAsync("/admin/keys"))!["data"]!.AsArray();
        var teamA = usage.Single(u => u!["name"]!.GetValue<string>() == "team-a")!;
        Assert.Equal(4, teamA["minute"]!["requests"]!.GetValue<long>()); // the refused 4th counts as an attempt
        Assert.Equal(3 * 10, teamA["tokens"]!.GetValue<long>()); // 7 prompt + 3 completion tokens each
        Assert.Equal(3, teamA["limits"]!["rpm"]!.GetValue<long>());
        using var notAdmin = await b.GetAsync("/admin/keys");
        Assert.Equal(HttpStatusCode.Forbidden, notAdmin.StatusCode);
        string metrics = await new HttpClient().GetStringAsync(s.Url + "/metrics");
        Assert.Contains("consort_key_requests_total{otel_scope_name=\"Consort.Server\",key=\"team-a\"}", metrics);
        Assert.Contains("consort_key_rejected_total{otel_scope_name=\"Consort.Server\",key=\"team-b\",limit=\"tpm\"}", metrics);
    }

    [Fact]
    public async Task A_token_budget_per_period_is_enforced()
    {
        using var dir = new TempDir();
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")], new ServerOptions { ApiKeysFile = WriteKeys(dir, KeysJson(rpm: 1000, budgetTokens: 20)) }, key: null);
        using var a = Client(s.Url, KeyA);
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("alpha", "x"), a)).Status); // 7 + 3 tokens
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("alpha", "x"), a)).Status); // 20 used
        var (st, j) = await s.PostAsync("/v1/chat/completions", Chat("alpha", "x"), a);
        Assert.Equal(429, st);
        Assert.Contains("token budget of 20 per day", j!["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public void Keys_files_are_validated_and_keys_are_found_only_by_their_exact_value()
    {
        using var dir = new TempDir();
        var ring = ApiKeyRing.Load(new ServerOptions { ApiKeysFile = WriteKeys(dir, KeysJson()), ReadKeysFromEnvironment = false });
        Assert.Equal("team-a", ring.Find(KeyA)!.Name);
        Assert.Equal("ops", ring.Find(Admin)!.Name);
        Assert.Null(ring.Find(KeyA + "x"));
        Assert.Null(ring.Find(KeyA[..^1]));
        Assert.Null(ring.Find(null));
        foreach (var (json, expect) in new[]
        {
            ("""{"keys":[{"name":"x"}]}""", "exactly one of"),
            ("""{"keys":[{"key":"abcdefghij"}]}""", "'name' is required"),
            ("""{"keys":[{"name":"x","key":"abcdefghij","rpm":-1}]}""", "'rpm'"),
            ("""{"keys":[{"name":"x","key":"abcdefghij","budget":{"tokens":5,"period":"fortnight"}}]}""", "fortnight"),
            ("""{"keys":[{"name":"x","key":"abcdefghij","colour":"red"}]}""", "'colour'"),
            ("""{"keys":[{"name":"x","key":"abcdefghij"},{"name":"x","key":"klmnopqrst"}]}""", "two keys are named 'x'"),
            ("""{"keys":[{"name":"x","key":"secret-in-a-broken-file" """, "invalid JSON"),
        })
        {
            var e = Assert.Throws<ConfigException>(() => ApiKeyRing.Load(new ServerOptions { ApiKeysFile = WriteKeys(dir, json), ReadKeysFromEnvironment = false }));
            Assert.Contains(expect, e.Message);
            Assert.DoesNotContain("secret-in-a-broken-file", e.Message);
            Assert.DoesNotContain("abcdefghij", e.Message);
        }
    }
}
