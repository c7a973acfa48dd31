using Microsoft.Extensions.AI;

namespace Consort;

/// <summary>
/// A model as Consort sees it: a descriptor plus whichever access it offers. A collaboration of
/// several models is also a <see cref="ConsortModel"/>, so collaborations nest and the CLI,
/// evaluator and server treat one model and an ensemble alike.
/// </summary>
public sealed class ConsortModel : IDisposable
{
    private readonly IDisposable[] _owned;

    /// <summary>Creates a model. <paramref name="owned"/> are disposed with it.</summary>
    public ConsortModel(ModelDescriptor descriptor, IChatClient chat, ITokenModel? tokens = null,
        IReadOnlyList<ConsortModel>? members = null, string? method = null, params IDisposable[] owned)
    {
        Descriptor = descriptor; Chat = chat; Tokens = tokens; Members = members ?? []; Method = method; _owned = owned;
    }

    /// <summary>What it is and offers.</summary>
    public ModelDescriptor Descriptor { get; }
    /// <summary>Text access.</summary>
    public IChatClient Chat { get; }
    /// <summary>Token access, where offered.</summary>
    public ITokenModel? Tokens { get; }
    /// <summary>Member models of a collaboration (empty for a single model).</summary>
    public IReadOnlyList<ConsortModel> Members { get; }
    /// <summary>Method name for a collaboration; null for a single model.</summary>
    public string? Method { get; }
    /// <summary>Name shortcut.</summary>
    public string Name => Descriptor.Name;

    /// <summary>Disposes what this model owns (not its members: their owner does).</summary>
    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>An error in user input (config, file, request) with a message meant for the user.</summary>
public class ConsortException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A config that cannot run: unknown method or key, missing file, missing capability.</summary>
public sealed class ConfigException(string message, Exception? inner = null) : ConsortException(message, inner);

/// <summary>A model file that is corrupt, truncated or unsupported.</summary>
public sealed class ModelFileException(string path, string problem, Exception? inner = null)
    : ConsortException($"{path}: {problem}", inner)
{
    /// <summary>The file.</summary>
    public string FilePath { get; } = path;
    /// <summary>What is wrong with it.</summary>
    public string Problem { get; } = problem;
}
