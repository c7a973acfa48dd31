using System.Net;
using System.Numerics.Tensors;
using System.Text.Json.Nodes;
using Consort.Embeddings;
using Consort.LlamaCpp;
using Consort.OpenAI;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Embeddings;

// One class: the MiniLM tests change CONSORT_MINILM, and xunit runs a class's tests one after another.
public class EmbeddingGeneratorTests
{
    private static float Cos(Embedding<float> a, Embedding<float> b) => TensorPrimitives.CosineSimilarity(a.Vector.Span, b.Vector.Span);

    [Fact]
    public async Task LlamaCppEmbedsAnyGgufWithDeterministicUnitVectors()
    {
        using var g = new LlamaEmbeddingGenerator(Path.Combine(TestPaths.RepoRoot, "zoo", "arith.gguf"), "arith");
        var e = await g.GenerateAsync(["Q: 7+48= A:", "Q: 3+12= A:", "Q: Where does Bexor live? A:"]);
        Assert.Equal(3, e.Count);
        Assert.All(e, v => Assert.Equal(g.Dimensions, v.Vector.Length));
        Assert.All(e, v => Assert.Equal(1.0, TensorPrimitives.Norm(v.Vector.Span), 3));
        // A 0.9M-parameter model's mean-pooled states do not separate topics (measured: additions 0.50 apart, an
        // addition and a fact 0.88); they do tell texts apart.
        Assert.True(Cos(e[0], e[1]) < 0.999 && Cos(e[0], e[2]) < 0.999);
        var again = await g.GenerateAsync(["Q: 7+48= A:"]);
        Assert.Equal(e[0].Vector.ToArray(), again[0].Vector.ToArray()); // deterministic
    }

    [Fact]
    public async Task AnEndpointsEmbeddingsComeFromItsV1EmbeddingsRoute()
    {
        using var listener = new HttpListener();
        int port = FreePort();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        JsonObject? request = null;
        var serve = Task.Run(async () =>
        {
            var ctx = await listener.GetContextAsync();
            using (var reader = new StreamReader(ctx.Request.InputStream)) request = JsonNode.Parse(await reader.ReadToEndAsync())!.AsObject();
            var path = ctx.Request.Url!.AbsolutePath;
            var body = path == "/v1/embeddings"
                ? """{"object":"list","model":"emb","data":[{"object":"embedding","index":0,"embedding":[0.6,0.8]},{"object":"embedding","index":1,"embedding":[1,0]}],"usage":{"prompt_tokens":5,"total_tokens":5}}"""
                : """{"error":{"message":"wrong path"}}""";
            ctx.Response.StatusCode = path == "/v1/embeddings" ? 200 : 404;
            ctx.Response.ContentType = "application/json";
            var bytes = System.Text.Encoding.UTF8.GetBytes(body);
            await ctx.Response.OutputStream.WriteAsync(bytes);
            ctx.Response.Close();
        });
        using var g = OpenAIEmbeddingGenerator.Create(new OpenAIModelOptions { Name = "remote", BaseUrl = $"http://127.0.0.1:{port}/v1", Model = "emb", MaxRetries = 0 });
        var e = await g.GenerateAsync(["first", "second"]);
        await serve;
        Assert.Equal("emb", (string?)request!["model"]);
        Assert.Equal(["first", "second"], request["input"]!.AsArray().Select(n => (string?)n));
        Assert.Equal([0.6f, 0.8f], e[0].Vector.ToArray());
        Assert.Equal([1f, 0f], e[1].Vector.ToArray());
    }

    [Fact]
    public async Task MiniLmLoadsFromTheOptionalBuildAndSaysHowToBuildItWhenMissing()
    {
        // ./test.sh builds the whole solution, the optional project included.
        Assert.True(MiniLmEmbeddings.Locate() is not null, $"{MiniLmEmbeddings.AssemblyName} is not built beside the tests: build the solution (./test.sh)");
        using (var g = MiniLmEmbeddings.Create())
        {
            var e = await g.GenerateAsync(["Q: 7+48= A:", "Q: 3+12= A:", "Q: Where does Bexor live? A:"]);
            Assert.All(e, v => Assert.Equal(384, v.Vector.Length));
            Assert.All(e, v => Assert.Equal(1.0, TensorPrimitives.Norm(v.Vector.Span), 3));
            Assert.True(Cos(e[0], e[1]) > Cos(e[0], e[2]));
            Assert.Equal("consort-minilm", g.GetService<EmbeddingGeneratorMetadata>()!.ProviderName);
        }
        using var empty = new TempDir();
        var previous = Environment.GetEnvironmentVariable(MiniLmEmbeddings.PathVariable);
        Environment.SetEnvironmentVariable(MiniLmEmbeddings.PathVariable, empty.Path);
        try
        {
            Assert.Null(MiniLmEmbeddings.Locate());
        }
        finally { Environment.SetEnvironmentVariable(MiniLmEmbeddings.PathVariable, previous); }
    }

    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
