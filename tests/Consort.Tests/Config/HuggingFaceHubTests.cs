using System.Net;
using System.Net.Sockets;
using Consort.Config;
using Consort.Testing;

namespace Consort.Tests.Config;

// One class: the tests set process-wide environment variables (HF_ENDPOINT, CONSORT_CACHE), so they run one after another.
public sealed class HuggingFaceHubTests : IDisposable
{
    private readonly TempDir _cache = new();
    private readonly string? _oldEndpoint = Environment.GetEnvironmentVariable("HF_ENDPOINT");
    private readonly string? _oldCache = Environment.GetEnvironmentVariable("CONSORT_CACHE");

    public HuggingFaceHubTests() => Environment.SetEnvironmentVariable("CONSORT_CACHE", _cache.Path);

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("HF_ENDPOINT", _oldEndpoint);
        Environment.SetEnvironmentVariable("CONSORT_CACHE", _oldCache);
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", null);
        _cache.Dispose();
    }


    [Fact]
    public void ParsesReferences()
    {
        var r = HuggingFaceReference.Parse("hf:owner/repo@v2/sub/dir/model.gguf");
        Assert.Equal(("owner", "repo", "v2", "sub/dir/model.gguf"), (r.Owner, r.Repository, r.Revision, r.FilePath));
        Assert.Equal("main", HuggingFaceReference.Parse("hf:o/r/f.gguf").Revision);
        Assert.Throws<ConfigException>(() => HuggingFaceReference.Parse("hf:o/r"));
        Assert.Throws<ConfigException>(() => HuggingFaceReference.Parse("hf:o/r/../x.gguf"));
    }

    [Fact]
    public async Task DownloadsOnceFromHfEndpointAndResumesAfterAnInterruption()
    {
        var payload = new byte[300_000];
        new Random(7).NextBytes(payload);
        int port = TestNet.FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var ranges = new List<string?>();
        var paths = new List<string>();
        int requests = 0;
        var server = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await listener.GetContextAsync(); } catch { return; }
                int n = Interlocked.Increment(ref requests);
                lock (ranges) { ranges.Add(ctx.Request.Headers["Range"]); paths.Add(ctx.Request.Url!.AbsolutePath); }
                long from = 0;
                if (ctx.Request.Headers["Range"] is { } range) from = long.Parse(range.Split('=')[1].TrimEnd('-'));
                ctx.Response.StatusCode = from > 0 ? 206 : 200;
                ctx.Response.ContentLength64 = payload.Length - from;
                try
                {
                    if (n == 1)
                    {
                        // First request: send part of the file, then drop the connection.
                        await ctx.Response.OutputStream.WriteAsync(payload.AsMemory(0, 100_000));
                        await ctx.Response.OutputStream.FlushAsync();
                        ctx.Response.Abort();
                        continue;
                    }
                    await ctx.Response.OutputStream.WriteAsync(payload.AsMemory((int)from));
                    ctx.Response.Close();
                }
                catch (Exception) { }
            }
        });

        Environment.SetEnvironmentVariable("HF_ENDPOINT", $"http://127.0.0.1:{port}");
        var reference = HuggingFaceReference.Parse("hf:someone/tiny-models/gguf/model.gguf");
        var e = await Assert.ThrowsAsync<ConsortException>(() => HuggingFaceHub.EnsureAsync(reference));
        Assert.Contains("run again to resume", e.Message);
        var part = HuggingFaceHub.CachePath(reference) + ".part";
        Assert.True(File.Exists(part));
        long partial = new FileInfo(part).Length;
        Assert.InRange(partial, 1, payload.Length - 1);

        var path = await HuggingFaceHub.EnsureAsync(reference);
        Assert.Equal(payload, await File.ReadAllBytesAsync(path));
        Assert.Equal($"bytes={partial}-", ranges[1]);
        Assert.Equal("/someone/tiny-models/resolve/main/gguf/model.gguf", paths[0]);

        // Cached: no further request.
        Assert.Equal(path, await HuggingFaceHub.EnsureAsync(reference));
        Assert.Equal(2, requests);
        listener.Stop();
    }

    [Fact]
    public async Task UnreachableOrOfflineSaysWhatToDownloadAndWhere()
    {
        Environment.SetEnvironmentVariable("HF_ENDPOINT", $"http://127.0.0.1:{TestNet.FreePort()}");
        var reference = HuggingFaceReference.Parse("hf:o/r/m.gguf");
        var e = await Assert.ThrowsAsync<ConsortException>(() => HuggingFaceHub.EnsureAsync(reference));
        Assert.Contains("/o/r/resolve/main/m.gguf", e.Message);
        Assert.Contains(HuggingFaceHub.CachePath(reference), e.Message);

        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        var offline = await Assert.ThrowsAsync<ConsortException>(() => HuggingFaceHub.EnsureAsync(reference));
        Assert.Contains("HF_HUB_OFFLINE", offline.Message);
        Assert.Contains(HuggingFaceHub.CachePath(reference), offline.Message);
    }

    [Fact]
    public void ConfigReferencesPointIntoTheCache()
    {
        var spec = Assert.IsType<GgufModelSpec>(ModelReferences.Parse(System.Text.Json.Nodes.JsonValue.Create("hf:o/r/dir/m.gguf"), "."));
        Assert.StartsWith(_cache.Path, spec.Path);
        Assert.Equal("m", spec.Name);
    }
}
