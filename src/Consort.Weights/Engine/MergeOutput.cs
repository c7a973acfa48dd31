using Consort.Formats;
using Consort.Formats.Conversion;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;

namespace Consort.Weights.Engine;

/// <summary>Where merged tensors go: a GGUF file or a safetensors folder, chosen by the output path.</summary>
public abstract class MergeOutput : IDisposable
{
    /// <summary>Declares a tensor (shape outermost-first).</summary>
    public abstract void Declare(string name, long[] shape, GgmlType type);
    /// <summary>Appends encoded bytes of the current tensor.</summary>
    public abstract void Write(string name, ReadOnlySpan<byte> bytes);
    /// <summary>Completes the output atomically.</summary>
    public abstract void Commit();
    /// <inheritdoc />
    public abstract void Dispose();

    /// <summary>True for a GGUF output.</summary>
    public static bool IsGgufSink(MergeOutput o) => o is GgufOutput;

    /// <summary>True when <paramref name="path"/> names a GGUF file (else a safetensors folder).</summary>
    public static bool IsGguf(string path) => path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);

    /// <summary>Opens the output matching <paramref name="path"/>, taking metadata/side files from <paramref name="template"/>.</summary>
    public static MergeOutput Create(string path, ITensorSource template, string name)
    {
        if (IsGguf(path))
        {
            if (template is not GgufTensorSource g)
                throw new ConsortException($"{path}: the inputs are {template.Format}; merge to a folder (safetensors), or convert the inputs to GGUF first");
            return new GgufOutput(path, g.File, name);
        }
        if (template is not SafetensorsModel st)
            throw new ConsortException($"{path}: the inputs are {template.Format}; give a .gguf output (or convert the inputs to safetensors first)");
        return new SafetensorsOutput(path, st);
    }

    private sealed class GgufOutput(string path, GgufFile template, string name) : MergeOutput
    {
        private readonly GgufWriter _w = Init(new GgufWriter(path, template.Alignment), template, name);

        private static GgufWriter Init(GgufWriter w, GgufFile t, string name)
        {
            w.CopyMetadata(t);
            w.SetMetadata("general.name", GgufValue.Of(name));
            return w;
        }

        public override void Declare(string n, long[] shape, GgmlType type) => _w.AddTensor(n, shape.Reverse().ToArray(), type);
        public override void Write(string n, ReadOnlySpan<byte> bytes) => _w.WriteTensorChunk(n, bytes);
        public override void Commit()
        {
            _w.Commit();
        }
        public override void Dispose() => _w.Dispose();
        public override void SetLayerCount(int layers)
        {
            var arch = template.GetString("general.architecture") ?? "llama";
            _w.SetMetadata(arch + ".block_count", GgufValue.Of((uint)layers));
        }
        public override void SetFileType(GgmlType mostly) =>
            _w.SetMetadata("general.file_type", GgufValue.Of((uint)(mostly switch { GgmlType.F16 => 1, GgmlType.BF16 => 32, GgmlType.Q8_0 => 7, _ => 0 })));
    }

    /// <summary>Records a layer count other than the template's (slices): GGUF <c>ARCH.block_count</c>, or <c>num_hidden_layers</c> in the copied config.json.</summary>
    public abstract void SetLayerCount(int layers);

    /// <summary>Records the predominant output type (GGUF general.file_type; safetensors has no such field).</summary>
    public virtual void SetFileType(GgmlType mostly) { }

    private sealed class SafetensorsOutput : MergeOutput
    {
        private readonly string _folder;
        private readonly SafetensorsModel _template;
        private readonly SafetensorsWriter _w;

        public SafetensorsOutput(string folder, SafetensorsModel template)
        {
            _folder = Path.GetFullPath(folder);
            if (File.Exists(_folder)) throw new ConsortException($"{_folder}: exists and is a file; a safetensors output is a folder (or give a .gguf path)");
            if (_folder == Path.GetFullPath(template.Folder)) throw new ConsortException($"{_folder}: refusing to write into an input's folder");
            _template = template;
            Directory.CreateDirectory(_folder);
            _w = new SafetensorsWriter(Path.Combine(_folder, "model.safetensors"));
            _w.SetMetadata("format", "pt");
        }

        private int? _layers;
        public override void SetLayerCount(int layers) => _layers = layers;
        public override void Declare(string n, long[] shape, GgmlType type) => _w.AddTensor(n, shape, type);
        public override void Write(string n, ReadOnlySpan<byte> bytes) => _w.WriteTensorChunk(n, bytes);
        public override void Commit()
        {
            _w.Commit();
            // A stale shard index would shadow the new single file.
            File.Delete(Path.Combine(_folder, SafetensorsModel.IndexFileName));
            foreach (var f in ModelConverter.SideFiles)
            {
                var src = Path.Combine(_template.Folder, f);
                if (File.Exists(src)) File.Copy(src, Path.Combine(_folder, f), overwrite: true);
            }
            var config = Path.Combine(_folder, "config.json");
            if (_layers is int n && File.Exists(config) && System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(config)) is System.Text.Json.Nodes.JsonObject o)
            {
                o["num_hidden_layers"] = n;
                File.WriteAllText(config, o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            }
        }
        public override void Dispose() => _w.Dispose();
    }
}
