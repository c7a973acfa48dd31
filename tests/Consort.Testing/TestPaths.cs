namespace Consort.Testing;

/// <summary>Locates the repository and the read-only <c>../shared</c> folder beside it.</summary>
public static class TestPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Consort.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root (Consort.slnx) not found above " + AppContext.BaseDirectory);
    });

    /// <summary>The repository root.</summary>
    public static string RepoRoot => Root.Value;
    /// <summary>The shared folder (datasets, models, notes) beside the repository.</summary>
    public static string Shared => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
    /// <summary>A file under shared/models.</summary>
    public static string Model(string relative) => Path.Combine(Shared, "models", relative);
    /// <summary>stories260K.gguf.</summary>
    public static string Stories260K => Model("stories260k/stories260K.gguf");
    /// <summary>llama2xs.gguf (same vocabulary as stories260K).</summary>
    public static string Llama2Xs => Model("llama2xs/llama2xs.gguf");
    /// <summary>TinyStories-656K-Q8_0.gguf (a different vocabulary).</summary>
    public static string TinyStories656K => Model("tinystories-656k/TinyStories-656K-Q8_0.gguf");
    /// <summary>A dataset file under shared/datasets.</summary>
    public static string Dataset(string name) => Path.Combine(Shared, "datasets", name.EndsWith(".json") ? name : name + ".json");
}

/// <summary>A temporary folder deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    /// <summary>Creates a fresh folder under the system temp path.</summary>
    public TempDir() { Path = Directory.CreateTempSubdirectory("consort-test-").FullName; }
    /// <summary>The folder.</summary>
    public string Path { get; }
    /// <summary>A path inside the folder.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);
    /// <inheritdoc />
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

/// <summary>Loopback networking helpers for tests that run real servers.</summary>
public static class TestNet
{
    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
