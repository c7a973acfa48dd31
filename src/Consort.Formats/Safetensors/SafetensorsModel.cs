using System.Text.Json;

namespace Consort.Formats.Safetensors;

/// <summary>
/// A safetensors model: one file, or shards listed by model.safetensors.index.json (weight_map), seen as one
/// <see cref="ITensorSource"/>. <see cref="Folder"/> is where config.json and tokenizer files live.
/// </summary>
public sealed class SafetensorsModel : ITensorSource
{
    /// <summary>Name of the shard index file.</summary>
    public const string IndexFileName = "model.safetensors.index.json";
    private readonly List<SafetensorsFile> _shards;
    private readonly Dictionary<string, SafetensorsFile> _owner = new();

    private SafetensorsModel(string path, string folder, List<SafetensorsFile> shards, List<(string Name, SafetensorsFile File)> order)
    {
        Path = path; Folder = folder; _shards = shards;
        var tensors = new List<TensorEntry>();
        foreach (var (name, file) in order)
        {
            _owner[name] = file;
            tensors.Add(file.Find(name)!);
        }
        Tensors = tensors;
    }

    /// <inheritdoc />
    public string Path { get; }
    /// <summary>Folder of the model (config.json, tokenizer files).</summary>
    public string Folder { get; }
    /// <inheritdoc />
    public string Format => "safetensors";
    /// <summary>The shard files.</summary>
    public IReadOnlyList<SafetensorsFile> Shards => _shards;
    /// <inheritdoc />
    public IReadOnlyList<TensorEntry> Tensors { get; }
    /// <inheritdoc />
    public TensorEntry? Find(string name) => _owner.TryGetValue(name, out var f) ? f.Find(name) : null;
    /// <inheritdoc />
    public ReadOnlySpan<byte> GetBytes(TensorEntry tensor, long offset, int length) => _owner[tensor.Name].GetBytes(tensor, offset, length);

    /// <summary>config.json of the model folder parsed, or null when there is none.</summary>
    public JsonDocument? ReadConfig()
    {
        var p = System.IO.Path.Combine(Folder, "config.json");
        if (!File.Exists(p)) return null;
        return SafeJson.ParseDocumentFile(p, Limits.MaxConfigBytes, "a config.json", SafeJson.Kind.Model);
    }

    /// <summary>Opens a folder (model.safetensors or the shard index in it), an index file, or one .safetensors file.</summary>
    public static SafetensorsModel Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(path))
        {
            var index = System.IO.Path.Combine(path, IndexFileName);
            var single = System.IO.Path.Combine(path, "model.safetensors");
            if (File.Exists(index)) return OpenIndex(index);
            if (File.Exists(single)) return OpenSingle(single);
            var any = Directory.GetFiles(path, "*.safetensors");
            if (any.Length == 1) return OpenSingle(any[0]);
            throw new ModelFileException(path, any.Length == 0 ? "no model.safetensors or " + IndexFileName + " in this folder" : $"{any.Length} .safetensors files but no {IndexFileName}");
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return OpenIndex(path);
        return OpenSingle(path);
    }

    private static SafetensorsModel OpenSingle(string file)
    {
        var f = SafetensorsFile.Open(file);
        return new SafetensorsModel(file, System.IO.Path.GetDirectoryName(file)!, [f], f.Tensors.Select(t => (t.Name, f)).ToList());
    }

    private static SafetensorsModel OpenIndex(string indexPath)
    {
        if (!File.Exists(indexPath)) throw new ModelFileException(indexPath, "file not found");
        var folder = System.IO.Path.GetDirectoryName(indexPath)!;
        Dictionary<string, string> weightMap;
        try
        {
            using var doc = SafeJson.ParseDocumentFile(indexPath, Limits.MaxConfigBytes, "a shard index", SafeJson.Kind.Model);
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new ModelFileException(indexPath, "no \"weight_map\" object");
            weightMap = wm.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()!
                : throw new ModelFileException(indexPath, $"weight_map entry {MessageText.Quote(p.Name)} is not a file name"));
        }
        catch (JsonException e) { throw new ModelFileException(indexPath, "is not valid JSON: " + e.Message, e); }
        catch (InvalidOperationException e) { throw new ModelFileException(indexPath, "weight_map values must be file names: " + e.Message, e); }

        var shards = new Dictionary<string, SafetensorsFile>();
        try
        {
            foreach (var shard in weightMap.Values.Distinct())
            {
                if (shard.Contains("..") || System.IO.Path.IsPathRooted(shard)) throw new ModelFileException(indexPath, $"shard name {MessageText.Quote(shard)} leaves the model folder");
                shards[shard] = SafetensorsFile.Open(System.IO.Path.Combine(folder, shard));
            }
            var order = new List<(string, SafetensorsFile)>();
            foreach (var (name, shard) in weightMap)
            {
                var f = shards[shard];
                if (f.Find(name) is null) throw new ModelFileException(f.Path, $"tensor {MessageText.Quote(name)} is listed in {IndexFileName} but missing from this shard");
                order.Add((name, f));
            }
            foreach (var f in shards.Values)
                foreach (var t in f.Tensors)
                    if (!weightMap.ContainsKey(t.Name)) throw new ModelFileException(f.Path, $"tensor {MessageText.Quote(t.Name)} is not listed in {IndexFileName}");
            return new SafetensorsModel(indexPath, folder, shards.Values.ToList(), order);
        }
        catch
        {
            foreach (var f in shards.Values) f.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var s in _shards) s.Dispose();
    }
}
